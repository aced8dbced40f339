package containerd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/cio"
	"github.com/containerd/fifo"
)

// maxLogLine is the longest log line written whole; longer lines are
// split into partial ("P") entries of this size, as CRI runtimes do.
const maxLogLine = 16 * 1024

// logRelay copies a container's stdout and stderr FIFOs into its log file
// in the CRI format. It runs in kiln, not in the shim: the shim writes the
// FIFOs, and keeps its own read end open so that a container does not get
// EPIPE while kiln is down; its output then waits in the pipe until a
// restarted kiln attaches a new relay to the same FIFOs.
//
// The relay also serves attach: what the container writes goes to the
// attached clients as it is read, and a container created with stdin has
// its stdin FIFO held open here, for attached clients to write to.
type logRelay struct {
	done    chan struct{} // closed when both streams ended and the file is closed
	streams []io.Closer

	mu        sync.Mutex
	attached  map[*attachment]struct{}
	stdin     io.WriteCloser // nil: the container has no stdin, or it was closed
	stdinOnce bool
}

// attachment is one attached client's output streams (stderr nil for a
// terminal, whose output is all on stdout).
type attachment struct {
	stdout, stderr io.Writer
}

// tee passes what stream carries to the attached clients. A client that
// fails a write is detached; the log gets everything regardless.
func (l *logRelay) tee(stream string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for a := range l.attached {
			w := a.stdout
			if stream == "stderr" {
				w = a.stderr
			}
			if w == nil {
				continue
			}
			if _, err := w.Write(p); err != nil {
				delete(l.attached, a)
			}
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// attach adds a client's output streams until the returned detach.
func (l *logRelay) attach(a *attachment) (detach func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.attached == nil {
		l.attached = map[*attachment]struct{}{}
	}
	l.attached[a] = struct{}{}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.attached, a)
	}
}

// writeStdin copies a client's input to the container's stdin until the
// input ends. With stdinOnce that end closes the relay's end of the FIFO,
// and writeStdin reports true: the caller must then have the shim close
// its own, which it holds open too. It reports false when the relay
// closed first (the container is gone).
func (l *logRelay) writeStdin(in io.Reader) (closed bool) {
	l.mu.Lock()
	w := l.stdin
	l.mu.Unlock()
	if w == nil {
		return false
	}
	_, _ = io.Copy(w, in)
	if !l.stdinOnce {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stdin != w {
		return false
	}
	l.stdin = nil
	w.Close()
	return true
}

// wait waits up to d for the relay to drain, and reports whether it did.
func (l *logRelay) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
		return true
	case <-t.C:
		return false
	}
}

// close stops reading (the rest stays in the pipe for a later relay) and
// closes the container's stdin.
func (l *logRelay) close() {
	for _, s := range l.streams {
		s.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stdin != nil {
		l.stdin.Close()
		l.stdin = nil
	}
}

// fifoPaths are the FIFOs of container id's task: stdin only if the
// container keeps one, and no stderr for a terminal, which has one output.
func (r *Runtime) fifoPaths(id string, rec containerRecord) cio.Config {
	dir := filepath.Join(r.p.io, id)
	fc := cio.Config{Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr"), Terminal: rec.TTY}
	if rec.TTY {
		fc.Stderr = ""
	}
	if rec.Stdin {
		fc.Stdin = filepath.Join(dir, "stdin")
	}
	return fc
}

// startRelay opens (creating if needed) the FIFOs of fc and relays them
// to logPath until the writers close them or Run's context ends. An
// existing live relay of id is returned instead. openTimeout > 0 bounds
// the wait for a writer: a task found already stopped may have no writer
// left.
func (r *Runtime) startRelay(id string, rec containerRecord, fc cio.Config, openTimeout time.Duration) (*logRelay, error) {
	logPath := rec.LogPath
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runCtx == nil || r.runCtx.Err() != nil {
		return nil, ErrNotReady
	}
	if l := r.relays[id]; l != nil {
		select {
		case <-l.done:
		default:
			return l, nil
		}
	}
	base := r.runCtx
	openCtx, cancelOpen := base, context.CancelFunc(func() {})
	if openTimeout > 0 {
		openCtx, cancelOpen = context.WithTimeout(base, openTimeout)
	}
	var out *os.File
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			cancelOpen()
			return nil, err
		}
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			cancelOpen()
			return nil, err
		}
		out = f
	}
	w := &criWriter{f: out, path: logPath, maxSize: r.cfg.LogMaxSize, maxFiles: r.cfg.LogMaxFiles}
	if out != nil {
		if st, err := out.Stat(); err == nil {
			w.size = st.Size() // a restarted kiln appends to the file
		}
	}
	l := &logRelay{done: make(chan struct{}), stdinOnce: rec.StdinOnce}
	type stream struct {
		name string
		rc   io.ReadCloser
	}
	var streams []stream
	fail := func(err error) (*logRelay, error) {
		for _, s := range streams {
			s.rc.Close()
		}
		if out != nil {
			out.Close()
		}
		cancelOpen()
		return nil, err
	}
	for _, s := range []struct{ name, path string }{{"stdout", fc.Stdout}, {"stderr", fc.Stderr}} {
		if s.path == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
			return fail(err)
		}
		// O_NONBLOCK here means "do not block this call": the open
		// completes in the background once the shim opens the write end.
		rc, err := fifo.OpenFifo(openCtx, s.path, syscall.O_RDONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			return fail(err)
		}
		streams = append(streams, stream{s.name, rc})
		l.streams = append(l.streams, rc)
	}
	if fc.Stdin != "" {
		// Held open so that the container's stdin does not end before
		// a client attaches; the open completes when the shim opens
		// the read end.
		wc, err := fifo.OpenFifo(openCtx, fc.Stdin, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_NONBLOCK, 0o700)
		if err != nil {
			return fail(err)
		}
		l.stdin = wc
	}
	stop := context.AfterFunc(base, l.close)
	r.relays[id] = l
	r.relayWG.Add(1)
	go func() {
		defer r.relayWG.Done()
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Go(func() { copyLines(s.name, io.TeeReader(s.rc, l.tee(s.name)), w) })
		}
		wg.Wait()
		stop()
		cancelOpen()
		l.close()
		w.close()
		close(l.done)
	}()
	return l, nil
}

// finishRelay waits (bounded) for container id's relay to drain, then
// forgets it and removes its FIFOs.
func (r *Runtime) finishRelay(id string, drain time.Duration) {
	r.mu.Lock()
	l := r.relays[id]
	r.mu.Unlock()
	if l != nil {
		if !l.wait(drain) {
			l.close()
			<-l.done
		}
		r.mu.Lock()
		if r.relays[id] == l {
			delete(r.relays, id)
		}
		r.mu.Unlock()
	}
	_ = os.RemoveAll(filepath.Join(r.p.io, id))
}

// drainRelay waits up to d for id's relay to reach the end of its output.
func (r *Runtime) drainRelay(id string, d time.Duration) {
	r.mu.Lock()
	l := r.relays[id]
	r.mu.Unlock()
	if l != nil {
		l.wait(d)
	}
}

// copyLines writes each line of rc as one CRI log entry: complete lines
// as "F", pieces of over-long lines as "P". Output that ends without a
// newline is a full last line; a line cut short because kiln stops is
// partial, and its rest follows from the next relay.
func copyLines(stream string, rc io.Reader, w *criWriter) {
	br := bufio.NewReaderSize(rc, maxLogLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			w.write(stream, 'F', line[:len(line)-1])
		case errors.Is(err, bufio.ErrBufferFull):
			w.write(stream, 'P', line)
		default:
			if len(line) > 0 {
				tag := byte('P')
				if errors.Is(err, io.EOF) {
					tag = 'F'
				}
				w.write(stream, tag, line)
			}
			return
		}
	}
}

// criWriter appends CRI log entries to one file; stdout and stderr share
// it, so entries are written whole under a lock. Past maxSize the file is
// rotated as the kubelet does: renamed to path.<time> and started anew,
// keeping maxFiles files in all, so a chatty container cannot fill the
// disk.
type criWriter struct {
	mu       sync.Mutex
	f        *os.File // nil: discard
	buf      []byte
	path     string
	size     int64
	maxSize  int64 // 0: never rotate
	maxFiles int
}

func (w *criWriter) write(stream string, tag byte, text []byte) {
	if w.f == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b := time.Now().UTC().AppendFormat(w.buf[:0], time.RFC3339Nano)
	b = append(b, ' ')
	b = append(b, stream...)
	b = append(b, ' ', tag, ' ')
	b = append(b, text...)
	b = append(b, '\n')
	w.buf = b
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(b)) > w.maxSize {
		w.rotate()
	}
	// A failed write (disk full) loses the line; the relay keeps reading
	// so the container never blocks on its output.
	n, _ := w.f.Write(b)
	w.size += int64(n)
}

// rotatedTimeFormat names rotated files after the time they were moved
// aside, as the kubelet does (0.log.20240501-100000), with nanoseconds:
// a chatty container may fill several files a second, and the fixed
// width makes the names sort oldest first.
const rotatedTimeFormat = "20060102-150405.000000000"

// rotate moves the current file aside, opens a new one and removes the
// oldest rotated files beyond maxFiles. On an error the writer keeps its
// file and tries again after another maxSize.
func (w *criWriter) rotate() {
	w.size = 0
	name := w.path + "." + time.Now().UTC().Format(rotatedTimeFormat)
	if err := os.Rename(w.path, name); err != nil {
		return
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		_ = os.Rename(name, w.path)
		return
	}
	w.f.Close()
	w.f = f
	rotated, _ := filepath.Glob(w.path + ".*")
	slices.Sort(rotated)
	for len(rotated) > w.maxFiles-1 {
		_ = os.Remove(rotated[0])
		rotated = rotated[1:]
	}
}

// close closes the current file (a rotation may have replaced the first).
func (w *criWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// relayIO is the cio.IO handed to containerd for a task: it only names
// the FIFOs. The relay is owned by the Runtime, not by containerd's task
// object, so that it outlives a containerd restart and kiln decides when
// it ends.
type relayIO struct{ cfg cio.Config }

func (x relayIO) Config() cio.Config { return x.cfg }
func (relayIO) Cancel()              {}
func (relayIO) Wait()                {}
func (relayIO) Close() error         { return nil }
