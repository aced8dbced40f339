package endpointslice

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

func TestNew_config(t *testing.T) {
	cs := &kubernetes.Clientset{} // never called: New makes no requests
	f := informers.NewSharedInformerFactory(cs, 0)
	tests := []struct {
		name string
		cfg  Config
		err  string
	}{
		{"defaults", Config{Client: cs, Informers: f}, ""},
		{"no client", Config{Informers: f}, "Config.Client"},
		{"no informers", Config{Client: cs}, "Config.Informers"},
		{"negative workers", Config{Client: cs, Informers: f, Workers: -1}, "Config.Workers"},
		{"slice too big", Config{Client: cs, Informers: f, MaxEndpointsPerSlice: 1001}, "Config.MaxEndpointsPerSlice"},
		{"negative batch", Config{Client: cs, Informers: f, BatchPeriod: -time.Second}, "Config.BatchPeriod"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.workers != DefaultWorkers || c.maxPerSlice != DefaultMaxEndpointsPerSlice || c.log == nil {
					t.Errorf("defaults: workers %d maxPerSlice %d", c.workers, c.maxPerSlice)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("err %v, want one naming %s", err, tc.err)
			}
		})
	}
}

// TestController_Run_twice: a second Run is refused; the first returns
// nil once ctx is done, even before the caches synced.
func TestController_Run_twice(t *testing.T) {
	cs := &kubernetes.Clientset{}
	c, err := New(Config{Client: cs, Informers: informers.NewSharedInformerFactory(cs, 0), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		started := c.started
		c.mu.Unlock()
		if started || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrRunTwice) {
		t.Errorf("second Run: %v, want ErrRunTwice", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after ctx was done")
	}
}
