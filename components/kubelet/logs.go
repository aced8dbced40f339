package kubelet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// followPoll is how often a followed log is checked for new lines and
// its container for having exited.
const followPoll = 200 * time.Millisecond

// criLine is one line of a CRI log file:
// "<RFC3339Nano> <stdout|stderr> <F|P>[:more tags] <content>".
type criLine struct {
	ts      time.Time
	stream  string
	partial bool
	content []byte
}

var errBadLogLine = errors.New("not a CRI log line")

// parseCRILine parses one line, with or without its newline.
func parseCRILine(line []byte) (criLine, error) {
	var l criLine
	line = bytes.TrimSuffix(line, []byte("\n"))
	ts, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return l, errBadLogLine
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return l, errBadLogLine
	}
	stream, rest, ok := bytes.Cut(rest, []byte(" "))
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return l, errBadLogLine
	}
	tags, content, _ := bytes.Cut(rest, []byte(" "))
	first, _, _ := bytes.Cut(tags, []byte(":"))
	switch string(first) {
	case "P":
		l.partial = true
	case "F":
	default:
		return l, errBadLogLine
	}
	l.ts, l.stream, l.content = t, string(stream), content
	return l, nil
}

// logWriter writes log content as `kubectl logs` shows it: the text,
// with each line's time in front when asked, and at most limit bytes.
type logWriter struct {
	w          io.Writer
	flush      func() error
	timestamps bool
	limit      int64 // 0: none
	written    int64
	// midLine is set after a partial line, whose continuation gets no
	// timestamp of its own.
	midLine bool
}

// errLimit ends a read once limitBytes were written.
var errLimit = errors.New("limitBytes reached")

func (lw *logWriter) write(l criLine) error {
	var b []byte
	if lw.timestamps && !lw.midLine {
		b = append(b, l.ts.UTC().Format(time.RFC3339Nano)...)
		b = append(b, ' ')
	}
	b = append(b, l.content...)
	if !l.partial {
		b = append(b, '\n')
	}
	lw.midLine = l.partial
	if lw.limit > 0 && lw.written+int64(len(b)) >= lw.limit {
		b = b[:lw.limit-lw.written]
		_, err := lw.w.Write(b)
		lw.written = lw.limit
		if err == nil {
			err = errLimit
		}
		return err
	}
	n, err := lw.w.Write(b)
	lw.written += int64(n)
	return err
}

// serveLog writes a CRI log file as plain text. With follow it keeps
// writing new lines until running reports the container gone and the
// file is drained, or ctx ends (the client went away).
func serveLog(ctx context.Context, w http.ResponseWriter, path string, lr logRequest, running func(context.Context) bool) error {
	rc := http.NewResponseController(w)
	lw := &logWriter{w: w, flush: rc.Flush, timestamps: lr.timestamps, limit: lr.limitBytes}
	f, err := openLog(ctx, path, lr.follow, running)
	if err != nil || f == nil {
		w.WriteHeader(http.StatusOK)
		return err
	}
	defer f.Close()
	if lr.tailLines >= 0 {
		off, err := tailOffset(f, lr.tailLines)
		if err != nil {
			return err
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return err
		}
	}
	w.WriteHeader(http.StatusOK)
	err = copyLog(ctx, f, path, lw, lr, running)
	if errors.Is(err, errLimit) {
		return nil
	}
	return err
}

// openLog opens a log file; when following one that does not exist yet,
// it waits for it while the container runs. A nil file means there is
// nothing to serve.
func openLog(ctx context.Context, path string, follow bool, running func(context.Context) bool) (*os.File, error) {
	for {
		f, err := os.Open(path)
		if err == nil {
			return f, nil
		}
		if !os.IsNotExist(err) {
			return nil, fmt.Errorf("open log: %w", err)
		}
		if !follow || !running(ctx) {
			return nil, nil
		}
		if err := pause(ctx, followPoll); err != nil {
			return nil, err
		}
	}
}

// copyLog writes the lines of f, which was opened at path. Following, it
// goes on into the new file at path when the runtime rotates the log.
func copyLog(ctx context.Context, f *os.File, path string, lw *logWriter, lr logRequest, running func(context.Context) bool) error {
	r := bufio.NewReaderSize(f, 64<<10)
	var pending []byte
	draining := false
	var next *os.File // the file after a rotation, read once f is drained
	orig := f         // the caller closes it
	defer func() {
		if next != nil {
			next.Close()
		}
		if f != orig {
			f.Close()
		}
	}()
	for {
		chunk, err := r.ReadBytes('\n')
		pending = append(pending, chunk...)
		if err == nil {
			if werr := emit(lw, pending, lr.since); werr != nil {
				return werr
			}
			pending = pending[:0]
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		// At the end of what is written so far.
		if lr.follow {
			if lw.flush != nil {
				_ = lw.flush()
			}
			if next != nil {
				// The rotated file is read to its end (the runtime wrote
				// it last before moving it aside): go on in the new one.
				if f != orig {
					f.Close()
				}
				f, next = next, nil
				r.Reset(f)
				continue
			}
			// Checked while draining too: the container may have
			// rotated its log just before it stopped.
			if next = rotatedTo(f, path); next != nil {
				continue
			}
			if !draining {
				if !running(ctx) {
					// The container is gone: read what it wrote last,
					// then stop.
					draining = true
					continue
				}
				if err := pause(ctx, followPoll); err != nil {
					return err
				}
				continue
			}
		}
		if len(pending) > 0 {
			return emit(lw, pending, lr.since)
		}
		return nil
	}
}

// rotatedTo opens the file now at path if it is not f: the runtime moved
// f aside and started a new log. Nil while path is still f, or not there
// yet.
func rotatedTo(f *os.File, path string) *os.File {
	cur, err := f.Stat()
	if err != nil {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil || os.SameFile(cur, st) {
		return nil
	}
	nf, err := os.Open(path)
	if err != nil {
		return nil
	}
	return nf
}

// emit writes one file line; lines that are not CRI lines are written
// as they are, since losing text would be worse.
func emit(lw *logWriter, line []byte, since time.Time) error {
	l, err := parseCRILine(line)
	if err != nil {
		l = criLine{content: bytes.TrimSuffix(line, []byte("\n")), ts: time.Now()}
	} else if !since.IsZero() && l.ts.Before(since) {
		return nil
	}
	return lw.write(l)
}

// tailOffset is where the last n lines of f begin.
func tailOffset(f *os.File, n int64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	if n == 0 {
		return size, nil
	}
	const block = 32 << 10
	buf := make([]byte, block)
	pos := size
	var count int64
	first := true
	for pos > 0 {
		m := min(int64(block), pos)
		pos -= m
		if _, err := f.ReadAt(buf[:m], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := m - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				continue
			}
			if first && pos+i == size-1 {
				// The newline ending the last line starts no line.
				continue
			}
			count++
			if count == n {
				return pos + i + 1, nil
			}
		}
		first = false
	}
	return 0, nil
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tailText is the last lines (at most maxBytes) of a container's log as
// text: the fallback termination message.
func tailText(path string, lines int64, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	off, err := tailOffset(f, lines)
	if err != nil {
		return ""
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return ""
	}
	var b bytes.Buffer
	lw := &logWriter{w: &b}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		_ = emit(lw, sc.Bytes(), time.Time{})
	}
	out := b.Bytes()
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out)
}
