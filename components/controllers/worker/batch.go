package worker

import (
	"context"
	"sync"
)

// SlowStartBatch calls fn count times, in concurrent batches of initial,
// 2*initial, 4*initial ... A batch with any failure ends it after that
// batch, and so does ctx ending, so a failing write (a quota, a bad
// template) costs one call rather than count. It returns how many calls
// succeeded and the first error; a panic in fn is an error. This is
// kube's slowStartBatch for pod creation.
func SlowStartBatch(ctx context.Context, count, initial int, fn func() error) (int, error) {
	done := 0
	for batch := min(count, initial); batch > 0; batch = min(2*batch, count-done) {
		if err := ctx.Err(); err != nil {
			return done, err
		}
		errs := make(chan error, batch)
		var wg sync.WaitGroup
		for range batch {
			wg.Go(func() {
				if err := Recover(fn); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		done += batch - len(errs)
		if len(errs) > 0 {
			return done, <-errs
		}
	}
	return done, nil
}
