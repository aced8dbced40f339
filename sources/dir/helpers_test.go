package dir

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"kiln.dev/kiln/sources"
)

// waitTimeout bounds every wait for the source; generous for -race on a
// busy machine, while a passing test never waits for it.
const waitTimeout = 10 * time.Second

// read is one read the source reported through its onRead seam.
type read struct {
	res  sources.Result
	sent bool
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// harness runs a Source over a directory for one test.
type harness struct {
	t     *testing.T
	root  string
	src   *Source
	out   chan sources.Result
	reads chan read
	stop  func() error // cancels Run and returns its error

	received int // Results taken from out
	sentSeen int // reads seen that sent a Result
}

// start runs a Source over root with test-friendly defaults; adjust may
// change the Config and the Source's seams before Run starts.
func start(t *testing.T, root string, adjust func(*Config), seams func(*Source)) *harness {
	t.Helper()
	cfg := Config{
		Name:   "test",
		Path:   root,
		Logger: testLogger(t),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:    t,
		root: root,
		src:  src,
		// Buffered so that "nothing was sent" can be checked without a
		// reader racing the source.
		out:   make(chan sources.Result, 64),
		reads: make(chan read, 4096),
	}
	src.onRead = func(res sources.Result, sent bool) { h.reads <- read{res, sent} }
	if seams != nil {
		seams(src)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, h.out) }()
	var stopped bool
	var runErr error
	h.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(waitTimeout):
				t.Fatal("Run did not return after cancel")
			}
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := h.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

// next returns the next Result sent.
func (h *harness) next() sources.Result {
	h.t.Helper()
	select {
	case res := <-h.out:
		h.received++
		return res
	case <-time.After(waitTimeout):
		h.t.Fatal("no result within the deadline")
		return sources.Result{}
	}
}

// nextSnapshot returns the next Result, which must be a snapshot.
func (h *harness) nextSnapshot() *sources.Snapshot {
	h.t.Helper()
	res := h.next()
	if res.Err != nil {
		h.t.Fatalf("got error result %v, want a snapshot", res.Err)
	}
	return res.Snapshot
}

// waitFor returns the first Result for which ok is true, skipping others
// (a read may catch a change half done), and how many Results it took.
func (h *harness) waitFor(what string, ok func(sources.Result) bool) (sources.Result, int) {
	h.t.Helper()
	deadline := time.After(waitTimeout)
	for n := 1; ; n++ {
		select {
		case res := <-h.out:
			h.received++
			if ok(res) {
				return res, n
			}
			h.t.Logf("skipping result while waiting for %s: %s", what, describe(res))
		case <-deadline:
			h.t.Fatalf("no result with %s within the deadline", what)
			return sources.Result{}, n
		}
	}
}

// settle waits until the read that sent the last received Result has
// finished and drops the reads reported so far, so that the next read is
// (normally) caused by what the test does next.
func (h *harness) settle() {
	h.t.Helper()
	for h.sentSeen < h.received {
		h.nextRead()
	}
	for {
		select {
		case r := <-h.reads:
			if r.sent {
				h.sentSeen++
			}
		default:
			return
		}
	}
}

// nextRead returns the next read the source made, sent or not.
func (h *harness) nextRead() read {
	h.t.Helper()
	select {
	case r := <-h.reads:
		if r.sent {
			h.sentSeen++
		}
		return r
	case <-time.After(waitTimeout):
		h.t.Fatal("no read within the deadline")
		return read{}
	}
}

// assertNothingSent fails if a Result is waiting in out.
func (h *harness) assertNothingSent() {
	h.t.Helper()
	select {
	case res := <-h.out:
		h.t.Fatalf("unexpected result: %s", describe(res))
	default:
	}
}

func describe(res sources.Result) string {
	if res.Err != nil {
		return "error: " + res.Err.Error()
	}
	return res.Snapshot.Revision + " " + filepath.Join(paths(res.Snapshot)...)
}

func paths(s *sources.Snapshot) []string {
	var ps []string
	for _, f := range s.Files {
		ps = append(ps, f.Path)
	}
	return ps
}

func hasFile(path, content string) func(sources.Result) bool {
	return func(res sources.Result) bool {
		if res.Snapshot == nil {
			return false
		}
		for _, f := range res.Snapshot.Files {
			if f.Path == path {
				return string(f.Data) == content
			}
		}
		return false
	}
}

func isErr(target error) func(sources.Result) bool {
	return func(res sources.Result) bool { return errors.Is(res.Err, target) }
}

// writeFiles creates files (slash paths relative to dir) and their parent
// directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeAtomic replaces path with content in one rename, the way careful
// editors save, so no read can see the file half written. The temporary
// file lives outside the watched tree.
func writeAtomic(t *testing.T, scratch, path, content string) {
	t.Helper()
	tmp := filepath.Join(scratch, filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fileMap turns a snapshot into path → content.
func fileMap(s *sources.Snapshot) map[string]string {
	m := map[string]string{}
	for _, f := range s.Files {
		m[f.Path] = string(f.Data)
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
