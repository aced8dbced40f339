// Package worker holds the worker loop shared by the replicaset, job and
// daemonset controllers: goroutines that pull keys from a rate-limited
// queue and hand each to the controller's sync, recovering panics,
// dropping keys whose error is Terminal and requeueing the rest with
// backoff. It is the only place those controllers log sync errors. It
// talks to nothing but the queue it is given.
//
//	// in Controller.Run, once the caches have synced:
//	worker.Run(ctx, c.queue, c.workers, c.sync, c.log)
//
//	// in sync, for an error that retrying cannot fix:
//	return worker.Terminal(fmt.Errorf("invalid selector: %w", err))
package worker
