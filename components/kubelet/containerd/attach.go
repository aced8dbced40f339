package containerd

import (
	"context"
	"fmt"

	ctrd "github.com/containerd/containerd"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Attach implements runtime.Runtime: the client's streams join the
// container's relay (logs.go) until the container's output ends, as it
// does when the container exits, or ctx is done.
func (r *Runtime) Attach(ctx context.Context, id string, opts runtime.AttachOptions) error {
	r.mu.Lock()
	l := r.relays[id]
	r.mu.Unlock()
	running := l != nil
	if running {
		select {
		case <-l.done:
			running = false
		default:
		}
	}
	if !running {
		return fmt.Errorf("container %s is not running", id)
	}
	if opts.Stdout != nil || opts.Stderr != nil {
		defer l.attach(&attachment{stdout: opts.Stdout, stderr: opts.Stderr})()
	}
	if opts.Stdin != nil {
		// Ends with the client's input; when the attach ends first, the
		// caller's closing of its streams ends it.
		go func() {
			if l.writeStdin(opts.Stdin) {
				r.closeStdin(context.WithoutCancel(ctx), id)
			}
		}()
	}
	if opts.Resize != nil {
		go r.resizeTask(ctx, id, opts.Resize)
	}
	select {
	case <-l.done:
	case <-ctx.Done():
	}
	return nil
}

// closeStdin has the shim close container id's stdin, which it keeps
// open for writers to come, so that the container reads its end (kube's
// stdinOnce).
func (r *Runtime) closeStdin(ctx context.Context, id string) {
	task, err := r.loadTask(ctx, id)
	if err != nil {
		r.log.Warn("cannot close stdin", logKeyContainer, id, logKeyErr, err)
		return
	}
	if err := task.CloseIO(ctx, ctrd.WithStdinCloser); err != nil {
		r.log.Warn("cannot close stdin", logKeyContainer, id, logKeyErr, err)
	}
}

// loadTask is container id's task.
func (r *Runtime) loadTask(ctx context.Context, id string) (ctrd.Task, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	ct, err := c.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return ct.Task(ctx, nil)
}

// resizeTask passes terminal sizes to container id's task until sizes
// closes or ctx is done.
func (r *Runtime) resizeTask(ctx context.Context, id string, sizes <-chan runtime.TerminalSize) {
	task, err := r.loadTask(ctx, id)
	if err != nil {
		return
	}
	for {
		select {
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			_ = task.Resize(ctx, uint32(sz.Width), uint32(sz.Height))
		case <-ctx.Done():
			return
		}
	}
}
