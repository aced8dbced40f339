package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/util/workqueue"
)

func newQueue(t *testing.T) workqueue.TypedRateLimitingInterface[string] {
	t.Helper()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	t.Cleanup(q.ShutDown)
	return q
}

func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// Moved from the replicaset, job and daemonset controllers' tests of
// their own processNextWorkItem.
func TestProcessNextWorkItem_panicRequeues(t *testing.T) {
	q := newQueue(t)
	q.Add("ns/rs")
	sync := func(context.Context, string) error { panic("boom") }
	if !processNextWorkItem(t.Context(), q, sync, testLogger(t)) {
		t.Fatal("worker stopped after a panic")
	}
	if n := q.NumRequeues("ns/rs"); n != 1 {
		t.Fatalf("requeues = %d, want 1: a panic is an error", n)
	}
}

func TestProcessNextWorkItem_terminalNotRequeued(t *testing.T) {
	q := newQueue(t)
	q.Add("ns/rs")
	sync := func(context.Context, string) error { return Terminal(errors.New("bad selector")) }
	processNextWorkItem(t.Context(), q, sync, testLogger(t))
	if n := q.NumRequeues("ns/rs"); n != 0 || q.Len() != 0 {
		t.Fatalf("requeues = %d, len = %d; want a terminal error dropped", n, q.Len())
	}
}

func TestProcessNextWorkItem_successForgets(t *testing.T) {
	q := newQueue(t)
	q.AddRateLimited("ns/rs") // one earlier failure
	sync := func(context.Context, string) error { return nil }
	if !processNextWorkItem(t.Context(), q, sync, testLogger(t)) {
		t.Fatal("worker stopped")
	}
	if n := q.NumRequeues("ns/rs"); n != 0 {
		t.Fatalf("requeues = %d, want 0 after a success", n)
	}
}

func TestProcessNextWorkItem_stoppingNotRequeued(t *testing.T) {
	q := newQueue(t)
	q.Add("ns/rs")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	sync := func(ctx context.Context, _ string) error { return ctx.Err() }
	processNextWorkItem(ctx, q, sync, testLogger(t))
	if n := q.NumRequeues("ns/rs"); n != 0 {
		t.Fatalf("requeues = %d, want 0 while stopping", n)
	}
}

func TestProcessNextWorkItem_shutDown(t *testing.T) {
	q := newQueue(t)
	q.ShutDown()
	if processNextWorkItem(t.Context(), q, func(context.Context, string) error { return nil }, testLogger(t)) {
		t.Fatal("worker kept going on a shut down queue")
	}
}

func TestRun_syncsUntilCtxDone(t *testing.T) {
	q := newQueue(t)
	ctx, cancel := context.WithCancel(t.Context())
	var synced, running atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, q, 3, func(context.Context, string) error {
			running.Add(1)
			defer running.Add(-1)
			synced.Add(1)
			return nil
		}, testLogger(t))
	}()
	for i := range 10 {
		q.Add(fmt.Sprintf("ns/%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for synced.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("synced %d of 10 keys", synced.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	if !q.ShuttingDown() || running.Load() != 0 {
		t.Fatalf("shutting down %v, running %d; want the queue shut down and no sync running", q.ShuttingDown(), running.Load())
	}
}

func TestRecover(t *testing.T) {
	if err := Recover(func() error { panic("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("err %v, want the panic", err)
	}
	want := errors.New("plain")
	if err := Recover(func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("err %v, want %v", err, want)
	}
}

func TestTerminal(t *testing.T) {
	base := errors.New("bad selector")
	err := fmt.Errorf("sync: %w", Terminal(base))
	if !IsTerminal(err) || !errors.Is(err, base) || Terminal(base).Error() != base.Error() {
		t.Fatalf("IsTerminal(%v) = %v, errors.Is = %v", err, IsTerminal(err), errors.Is(err, base))
	}
	if IsTerminal(base) {
		t.Fatal("a plain error is terminal")
	}
}
