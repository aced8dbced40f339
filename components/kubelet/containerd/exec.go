package containerd

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// maxExecOutput caps what ExecSync keeps of each stream; probes and hooks
// need little, and a runaway command must not exhaust kiln's memory.
const maxExecOutput = 1 << 20

// ExecSync implements runtime.Runtime. The command runs as the container's
// process does (user, env, cwd, namespaces); after timeout it is killed
// and ErrExecTimeout returned.
func (r *Runtime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, nil, 0, err
	}
	if len(cmd) == 0 {
		return nil, nil, 0, fmt.Errorf("exec in %s: empty command", id)
	}
	ct, err := c.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil, 0, fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("load container %s: %w", id, err)
	}
	task, err := ct.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil, 0, fmt.Errorf("exec in %s: container is not running", id)
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("task of %s: %w", id, err)
	}
	spec, err := ct.Spec(ctx)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("spec of %s: %w", id, err)
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = false

	var stdout, stderr cappedBuffer
	execID := "exec-" + newID()[:16]
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(r.p.exec)))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("exec in %s: %w", id, err)
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
		return nil, nil, 0, fmt.Errorf("exec in %s: %w", id, err)
	}
	if err := proc.Start(ctx); err != nil {
		return nil, nil, 0, fmt.Errorf("exec %q in %s: %w", cmd[0], id, err)
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
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
		runErr = fmt.Errorf("%w after %s: %q in %s", ErrExecTimeout, timeout, cmd, id)
	case <-ctx.Done():
		_ = proc.Kill(cctx, syscall.SIGKILL)
		<-statusc
		runErr = ctx.Err()
	}
	// Delete waits for the output to be copied, so read the buffers after.
	deleted = true
	if _, err := proc.Delete(cctx); err != nil && runErr == nil && !errdefs.IsNotFound(err) {
		runErr = fmt.Errorf("exec in %s: delete process: %w", id, err)
	}
	return stdout.Bytes(), stderr.Bytes(), code, runErr
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
