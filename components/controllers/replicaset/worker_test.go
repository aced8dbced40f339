package replicaset

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// newIdle returns a controller whose client is never contacted: its
// informers are not started.
func newIdle(t *testing.T) *Controller {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Client: cs, Informers: informers.NewSharedInformerFactory(cs, 0),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.queue.ShutDown)
	return c
}

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
			done, err := slowStartBatch(t.Context(), tc.count, 1, func() error {
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
		done, err := slowStartBatch(ctx, 100, 1, func() error {
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
		_, err := slowStartBatch(t.Context(), 1, 1, func() error { panic("boom") })
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("err %v, want the panic", err)
		}
	})
}

func TestNew_validates(t *testing.T) {
	cs, _ := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1"})
	f := informers.NewSharedInformerFactory(cs, 0)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no client", Config{Informers: f}, "Client"},
		{"no informers", Config{Client: cs}, "Informers"},
		{"negative workers", Config{Client: cs, Informers: f, Workers: -1}, "Workers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestController_Run_twice(t *testing.T) {
	c := newIdle(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // caches never sync: Run returns at once
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrRunTwice) {
		t.Fatalf("second Run: %v, want ErrRunTwice", err)
	}
}
