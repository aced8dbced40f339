package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/workqueue"
)

// Run starts workers goroutines that each take keys from q and call syncFn
// with them until q shuts down. It blocks until ctx is done, then shuts q
// down and returns once every worker has exited, so no sync runs after
// Run returns (a sync in progress finishes first).
//
// After syncFn returns, the key is forgotten (its backoff reset) on success
// or on a Terminal error, left alone while ctx is done (the next instance
// syncs every key anyway), and otherwise requeued with q's rate limit. A
// panic in syncFn is recovered and treated as an error. Errors are logged
// to log, which must not be nil: Terminal ones at Error, write conflicts
// at Debug, the rest at Warn.
func Run(ctx context.Context, q workqueue.TypedRateLimitingInterface[string], workers int,
	syncFn func(ctx context.Context, key string) error, log *slog.Logger) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for processNextWorkItem(ctx, q, syncFn, log) {
			}
		})
	}
	<-ctx.Done()
	q.ShutDown()
	wg.Wait()
}

// processNextWorkItem syncs one key; it returns false once q is shut
// down.
func processNextWorkItem(ctx context.Context, q workqueue.TypedRateLimitingInterface[string],
	syncFn func(ctx context.Context, key string) error, log *slog.Logger) bool {
	key, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(key)
	err := Recover(func() error { return syncFn(ctx, key) })
	switch {
	case err == nil:
		q.Forget(key)
	case ctx.Err() != nil:
		// Stopping: the next instance syncs every key anyway.
	case IsTerminal(err):
		q.Forget(key)
		log.Error("sync failed, not retrying", logKeyObject, key, logKeyError, err)
	case apierrors.IsConflict(err):
		// A write raced with another (often the controller's own cached
		// view lagging its last write): an ordinary retry, not a problem.
		q.AddRateLimited(key)
		log.Debug("sync conflicted, retrying", logKeyObject, key, logKeyError, err)
	default:
		q.AddRateLimited(key)
		log.Warn("sync failed, retrying", logKeyObject, key, logKeyError, err)
	}
	return true
}

// Recover runs fn and turns a panic into an error carrying the panic
// value and stack.
func Recover(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return fn()
}

// NewQueue is a controller's work queue: client-go's default controller
// rate limiter (per-item exponential back-off and an overall bucket), the
// queue named for its metrics.
func NewQueue(name string) workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: name})
}
