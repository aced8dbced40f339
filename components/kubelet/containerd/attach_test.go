package containerd

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// TestRuntime_attach: a client attached to a container created with stdin
// writes to what the container reads and gets what it writes from then
// on; with StdinOnce the end of the client's input ends the container's
// stdin, and the attach ends when the container exits. The log gets the
// output too, and a second client may watch alongside.
func TestRuntime_attach(t *testing.T) {
	n := startNode(t, nodeOptions{})
	sb := n.sandbox(t, "attach", true)
	id := n.run(t, sb, runtime.ContainerConfig{Name: "cat", Command: []string{"/demo-web", "cat"}, Stdin: true, StdinOnce: true})
	n.waitState(t, id, runtime.ContainerRunning, 20*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// A watcher without stdin, attached first, sees the same output.
	var watched lockedBuffer
	watcherDone := make(chan error, 1)
	go func() { watcherDone <- n.rt.Attach(ctx, id, runtime.AttachOptions{Stdout: &watched}) }()

	// The input arrives in two parts, the second after the container
	// answered the first: it is the running cat that answers, not a
	// replay.
	inR, inW := io.Pipe()
	var out lockedBuffer
	attached := make(chan error, 1)
	go func() {
		attached <- n.rt.Attach(ctx, id, runtime.AttachOptions{Stdin: inR, Stdout: &out, Stderr: &out})
	}()
	if _, err := io.WriteString(inW, "hello\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the first line back", func() bool { return out.String() == "hello\n" })
	if _, err := io.WriteString(inW, "world\n"); err != nil {
		t.Fatal(err)
	}
	inW.Close() // StdinOnce: the container's stdin ends, and cat with it
	select {
	case err := <-attached:
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the attach did not end when the container exited")
	}
	if got := out.String(); got != "hello\nworld\n" {
		t.Fatalf("attached output %q, want hello and world", got)
	}
	if err := <-watcherDone; err != nil || ctx.Err() != nil {
		t.Fatalf("the watcher's attach: %v (context %v)", err, ctx.Err())
	}
	if got := watched.String(); got != "hello\nworld\n" {
		t.Errorf("the watcher saw %q", got)
	}
	if st := n.waitState(t, id, runtime.ContainerExited, 10*time.Second); st.ExitCode != 0 {
		t.Fatalf("cat exited %d", st.ExitCode)
	}
	n.rt.drainRelay(id, 10*time.Second)
	log, err := os.ReadFile(filepath.Join(n.root, "pods", sb.PodUID, "cat", "0.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), " stdout F hello\n") || !strings.Contains(string(log), " stdout F world\n") {
		t.Errorf("log:\n%s", log)
	}
	if err := n.rt.Attach(ctx, id, runtime.AttachOptions{Stdout: io.Discard}); err == nil {
		t.Error("attaching to an exited container succeeded")
	}
}

// TestRuntime_attachTTY: a container with a terminal runs with one output
// stream (the terminal's), which reaches the log and an attached client.
func TestRuntime_attachTTY(t *testing.T) {
	n := startNode(t, nodeOptions{})
	sb := n.sandbox(t, "tty", true)
	id := n.run(t, sb, runtime.ContainerConfig{Name: "cat", Command: []string{"/demo-web", "cat"}, Stdin: true, TTY: true})
	n.waitState(t, id, runtime.ContainerRunning, 20*time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	inR, inW := io.Pipe()
	defer inW.Close()
	var out lockedBuffer
	resize := make(chan runtime.TerminalSize, 1)
	resize <- runtime.TerminalSize{Width: 100, Height: 40}
	attached := make(chan error, 1)
	go func() {
		attached <- n.rt.Attach(ctx, id, runtime.AttachOptions{Stdin: inR, Stdout: &out, Resize: resize})
	}()
	if _, err := io.WriteString(inW, "typed\n"); err != nil {
		t.Fatal(err)
	}
	// The terminal echoes the line, then cat writes it: CRLF both.
	waitFor(t, ctx, "the line through the terminal", func() bool { return strings.Count(out.String(), "typed\r\n") == 2 })
	if err := n.rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-attached:
		if err != nil {
			t.Fatalf("Attach: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the attach did not end when the container stopped")
	}
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
