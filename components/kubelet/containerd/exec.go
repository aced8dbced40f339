package containerd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// maxExecOutput caps what ExecSync keeps of each stream; probes and hooks
// need little, and a runaway command must not exhaust kiln's memory.
const maxExecOutput = 1 << 20

// ExecSync implements runtime.Runtime. The command runs as the container's
// process does (user, env, cwd, namespaces); after timeout it is killed
// and ErrExecTimeout returned.
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	var stdout, stderr cappedBuffer
	code, err := r.runExec(ctx, id, execRun{cmd: cmd, timeout: timeout,
		streams: []cio.Opt{cio.WithStreams(nil, &stdout, &stderr)}})
	// runExec returns once the output has been copied.
	return stdout.Bytes(), stderr.Bytes(), code, err
}

// execRun is one exec's command, streams and limits.
type execRun struct {
	cmd     []string
	tty     bool
	streams []cio.Opt
	// timeout kills the command after that long (0: no limit).
	timeout time.Duration
	// started, when set, runs once the command has started, with the
	// process; resize and stdin closing need it.
	started func(ctrd.Process)
}

// runExec runs x in container id as the container's process runs (user,
// env, cwd, namespaces) and waits for it to exit, for its timeout, or for
// ctx, when it is killed. It returns after the process is deleted, which
// waits for its output to be copied.
func (r *Runtime) runExec(ctx context.Context, id string, x execRun) (int, error) {
	task, spec, err := r.execTarget(ctx, id, x.cmd)
	if err != nil {
		return 0, err
	}
	pspec := *spec.Process
	pspec.Args = x.cmd
	pspec.Terminal = x.tty
	execID := "exec-" + newID()[:16]
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(append(x.streams, cio.WithFIFODir(r.p.exec))...))
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	// Cleanup must happen even when ctx is done: the exec process holds
	// FIFOs and a slot in the shim.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killWait)
	defer cancel()
	deleted := false
	defer func() {
		if !deleted {
			_, _ = proc.Delete(cctx)
		}
	}()
	statusc, err := proc.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return 0, fmt.Errorf("exec %q in %s: %w", x.cmd[0], id, err)
	}
	if x.started != nil {
		x.started(proc)
	}
	var timer <-chan time.Time
	if x.timeout > 0 {
		t := time.NewTimer(x.timeout)
		defer t.Stop()
		timer = t.C
	}
	var runErr error
	code := -1
	select {
	case st := <-statusc:
		ec, _, err := st.Result()
		if err != nil {
			runErr = fmt.Errorf("exec in %s: %w", id, err)
		}
		code = int(ec)
	case <-timer:
		_ = proc.Kill(cctx, syscall.SIGKILL)
		<-statusc
		runErr = fmt.Errorf("%w after %s: %q in %s", ErrExecTimeout, x.timeout, x.cmd, id)
	case <-ctx.Done():
		_ = proc.Kill(cctx, syscall.SIGKILL)
		<-statusc
		runErr = ctx.Err()
	}
	deleted = true
	if _, err := proc.Delete(cctx); err != nil && runErr == nil && !errdefs.IsNotFound(err) {
		runErr = fmt.Errorf("exec in %s: delete process: %w", id, err)
	}
	return code, runErr
}

// cappedBuffer keeps the first maxExecOutput bytes written to it and
// discards the rest (the writer must never block on it).
type cappedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := maxExecOutput - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *cappedBuffer) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.b.Bytes())
}

// execTarget is the running task of container id and its spec, for an
// exec of cmd.
func (r *Runtime) execTarget(ctx context.Context, id string, cmd []string) (ctrd.Task, *oci.Spec, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, nil, err
	}
	if len(cmd) == 0 {
		return nil, nil, fmt.Errorf("exec in %s: empty command", id)
	}
	ct, err := c.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load container %s: %w", id, err)
	}
	task, err := ct.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil, fmt.Errorf("exec in %s: container is not running", id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("task of %s: %w", id, err)
	}
	spec, err := ct.Spec(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("spec of %s: %w", id, err)
	}
	return task, spec, nil
}

// Exec implements runtime.Runtime: the caller's streams (and a terminal
// when asked) are attached through FIFOs.
func (r *Runtime) Exec(ctx context.Context, id string, opts runtime.ExecOptions) (int, error) {
	stderr := opts.Stderr
	if opts.TTY {
		stderr = nil // a terminal has one output
	}
	// The shim keeps the command's stdin open until told: the client's
	// EOF must reach the command (cat, sh -c 'read x'), once it started.
	started := make(chan ctrd.Process, 1)
	var stdin io.Reader
	if opts.Stdin != nil {
		stdin = &eofReader{r: opts.Stdin, eof: func() {
			select {
			case proc := <-started:
				_ = proc.CloseIO(context.WithoutCancel(ctx), ctrd.WithStdinCloser)
			case <-ctx.Done():
			}
		}}
	}
	streams := []cio.Opt{cio.WithStreams(stdin, opts.Stdout, stderr)}
	if opts.TTY {
		streams = append(streams, cio.WithTerminal)
	}
	done := make(chan struct{})
	defer close(done)
	return r.runExec(ctx, id, execRun{cmd: opts.Cmd, tty: opts.TTY, streams: streams, started: func(proc ctrd.Process) {
		started <- proc
		if !opts.TTY || opts.Resize == nil {
			return
		}
		go func() {
			for {
				select {
				case sz, ok := <-opts.Resize:
					if !ok {
						return
					}
					_ = proc.Resize(context.WithoutCancel(ctx), uint32(sz.Width), uint32(sz.Height))
				case <-done:
					return
				}
			}
		}()
	}})
}

// eofReader calls eof once when r is exhausted.
type eofReader struct {
	r    io.Reader
	eof  func()
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(e.eof)
	}
	return n, err
}

// PortForward implements runtime.Runtime: it dials the port on the
// pod's loopback from inside its network namespace (the node's, for a
// host-network pod), as the CRI's port forwarding does.
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	sb, err := r.getSandbox(ctx, c, sandboxID)
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	if sb.HostNetwork || sb.NetNS == "" {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialInNetns(ctx, sb.NetNS, addr)
	}
	if err != nil {
		return fmt.Errorf("port %d of pod %s/%s: %w", port, sb.Namespace, sb.Name, err)
	}
	return runtime.Forward(conn, stream)
}
