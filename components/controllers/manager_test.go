package controllers_test

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/testenv"
)

// slowStop is a controller that takes a while to return after its
// context is done, like a scheduler finishing its binds in flight.
type slowStop struct {
	running *atomic.Int32
	overlap *atomic.Bool
}

func (s slowStop) Run(ctx context.Context) error {
	if s.running.Add(1) > 1 {
		s.overlap.Store(true)
	}
	<-ctx.Done()
	time.Sleep(300 * time.Millisecond)
	s.running.Add(-1)
	return nil
}

// A successor must not lead while the old leader's controllers are still
// returning: the Lease is released only after they have.
func TestManager_Run_releasesLeaseAfterControllersStop(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	var running atomic.Int32
	var overlap atomic.Bool
	newManager := func(id string) *controllers.Manager {
		m, err := controllers.New(controllers.Config{
			Client:        env.Clientset,
			Identity:      id,
			LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
			Controllers: map[string]controllers.Builder{
				"slow": func(controllers.Shared) (controllers.Runnable, error) {
					return slowStop{&running, &overlap}, nil
				},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	first, second := newManager("first"), newManager("second")
	ctx1, stop1 := context.WithCancel(t.Context())
	done1 := make(chan error, 1)
	go func() { done1 <- first.Run(ctx1) }()
	select {
	case <-first.Leading():
	case <-time.After(10 * time.Second):
		t.Fatal("first never led")
	}
	ctx2, stop2 := context.WithCancel(t.Context())
	defer stop2()
	done2 := make(chan error, 1)
	go func() { done2 <- second.Run(ctx2) }()

	stop1()
	select {
	case err := <-done1:
		if err != nil {
			t.Fatalf("first.Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first.Run did not return")
	}
	if running.Load() != 0 {
		t.Fatal("first.Run returned while its controller was still running")
	}
	select {
	case <-second.Leading():
	case <-time.After(10 * time.Second):
		t.Fatal("second never led after the first released the Lease")
	}
	stop2()
	if err := <-done2; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("second.Run = %v", err)
	}
	if overlap.Load() {
		t.Error("the two managers' controllers ran at the same time")
	}
}
