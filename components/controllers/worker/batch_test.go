package worker

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
)

func TestSlowStartBatch(t *testing.T) {
	tests := []struct {
		name      string
		count     int
		failAfter int // calls that succeed before every call fails; -1 never
		wantDone  int
		wantCalls int
	}{
		{"all succeed", 10, -1, 10, 10},     // batches 1, 2, 4, 3
		{"first fails", 10, 0, 0, 1},        // one call, not ten
		{"third batch fails", 100, 3, 3, 7}, // 1 + 2 ok, batch of 4 fails
		{"zero", 0, -1, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			done, err := SlowStartBatch(t.Context(), tc.count, 1, func() error {
				if n := calls.Add(1); tc.failAfter >= 0 && int(n) > tc.failAfter {
					return errors.New("quota")
				}
				return nil
			})
			if done != tc.wantDone || int(calls.Load()) != tc.wantCalls || (err != nil) != (tc.wantDone < tc.count) {
				t.Errorf("done %d, calls %d, err %v; want done %d, calls %d", done, calls.Load(), err, tc.wantDone, tc.wantCalls)
			}
		})
	}
	t.Run("stops when ctx ends", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var calls atomic.Int32
		done, err := SlowStartBatch(ctx, 100, 1, func() error {
			if calls.Add(1) == 3 {
				cancel() // mid-batch: the batch still completes
			}
			return nil
		})
		if done != 3 || !errors.Is(err, context.Canceled) {
			t.Errorf("done %d, err %v; want 3 and context.Canceled", done, err)
		}
	})
	t.Run("panic is an error", func(t *testing.T) {
		_, err := SlowStartBatch(t.Context(), 1, 1, func() error { panic("boom") })
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("err %v, want the panic", err)
		}
	})
}
