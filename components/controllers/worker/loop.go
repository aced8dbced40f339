package worker

import (
	"context"
	"log/slog"
	"sync"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Guard refuses a controller's second Run. The zero value is ready.
type Guard struct {
	mu      sync.Mutex
	started bool
}

// Start reports whether this is the first call.
func (g *Guard) Start() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return false
	}
	g.started = true
	return true
}

// Started reports whether Start was called: tests wait on it for a Run
// to be under way.
func (g *Guard) Started() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.started
}

// RunQueue is the Run of a controller fed by the handlers hs: it waits
// for their caches, then runs workers with sync on q until ctx ends.
// Shutdown, in order: 1. the queue stops handing out keys; 2. workers
// finish their syncs and exit; 3. the handlers come off their informers,
// since the factory may outlive the controller.
func RunQueue(ctx context.Context, hs *Handlers, q workqueue.TypedRateLimitingInterface[string], workers int,
	sync func(ctx context.Context, key string) error, log *slog.Logger) {
	defer hs.Remove()
	defer q.ShutDown()
	log.Info("waiting for caches")
	if !cache.WaitForCacheSync(ctx.Done(), hs.Synced()...) {
		return // ctx ended first
	}
	log.Info("starting workers", "workers", workers)
	Run(ctx, q, workers, sync, log)
	log.Info("stopped")
}
