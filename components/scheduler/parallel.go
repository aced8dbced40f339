package scheduler

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelize calls fn(w, i) for every i in [0, n), on up to workers
// goroutines taking chunks of indices in order; w is the goroutine's
// index in [0, workers), for per-goroutine scratch. fn returning false
// stops the others after their current index. A panic in fn becomes the
// returned error instead of killing the process. Small n run inline, and
// no more goroutines start than there are CPUs to run them: the work is
// CPU-bound, and on a 2-core machine 16 goroutines only add switches.
func parallelize(workers, n int, fn func(w, i int) bool) (err error) {
	if n <= 0 {
		return nil
	}
	workers = min(workers, runtime.GOMAXPROCS(0))
	chunk := chunkSize(n, workers)
	chunks := (n + chunk - 1) / chunk
	workers = min(workers, chunks)
	if workers <= 1 || n < minParallelItems {
		defer recoverInto(&err)
		for i := range n {
			if !fn(0, i) {
				return nil
			}
		}
		return nil
	}
	var (
		next  atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
		errMu sync.Mutex
	)
	for w := range workers {
		wg.Go(func() {
			var perr error
			defer func() {
				if perr != nil {
					stop.Store(true)
					errMu.Lock()
					err = perr
					errMu.Unlock()
				}
			}()
			defer recoverInto(&perr)
			for !stop.Load() {
				c := int(next.Add(1) - 1)
				if c >= chunks {
					return
				}
				for i := c * chunk; i < min(n, (c+1)*chunk); i++ {
					if stop.Load() {
						return
					}
					if !fn(w, i) {
						stop.Store(true)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	return err
}

// minParallelItems is the fewest nodes worth handing to goroutines: below
// it, starting them costs more than the filters.
const minParallelItems = 64

// chunkSize is kube's chunkSizeFor: about sqrt(n), but small enough that
// every worker gets a chunk.
func chunkSize(n, workers int) int {
	s := int(math.Sqrt(float64(n)))
	if r := n/max(workers, 1) + 1; r < s {
		s = r
	}
	return max(s, 1)
}

func recoverInto(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("panic: %v", r)
	}
}
