package replicaset

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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
