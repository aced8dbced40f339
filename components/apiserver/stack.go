package apiserver

// growStackBytes is the frame growStack takes, which brings a new
// goroutine's stack to 16 KB: enough for a write's deepest path (protobuf
// decode, validation, JSON encode of a pod with containers) nearly always.
// A 32 KB stack would come from the heap rather than the per-P stack cache
// and cost more than the growths it saves (measured in BenchmarkAPICreate).
const growStackBytes = 8 << 10

// growStack grows the calling goroutine's stack in one step, while it is
// still shallow.
//
// net/http serves every request on a new goroutine, which starts with a
// small stack. A write decodes, validates and encodes an object through deep
// recursive calls, and the runtime grew and copied that stack two or three
// times per request, each copy walking every frame: about a tenth of the
// handler's CPU in BenchmarkAPICreate. One growth at the top copies a few
// frames only. The runtime shrinks an unused stack again at GC.
// CockroachDB's util/growstack does the same for the same reason.
//
//go:noinline
func growStack() {
	var buf [growStackBytes]byte
	keepFrame(buf[:])
}

// keepFrame uses the buffer so that growStack's frame is not optimized
// away.
//
//go:noinline
func keepFrame([]byte) {}
