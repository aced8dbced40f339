package main

import (
	"context"
	"slices"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/testenv"
)

func TestAPIEndpoint(t *testing.T) {
	for _, c := range []struct{ addr, nodeIP, want string }{
		{"10.0.0.5:6443", "10.0.0.9", "10.0.0.5:6443"},
		{"0.0.0.0:6443", "10.0.0.9", "10.0.0.9:6443"},
		{":6443", "10.0.0.9", "10.0.0.9:6443"},
		{"[::]:6443", "10.0.0.9", "10.0.0.9:6443"},
		{"127.0.0.1:6443", "10.0.0.9", ""},
		{"0.0.0.0:6443", "127.0.0.1", ""},
		{"0.0.0.0:6443", "", ""},
		{"[fd00::1]:6443", "10.0.0.9", ""},
		{"api.example:6443", "10.0.0.9", ""},
	} {
		if got := apiEndpoint(c.addr, c.nodeIP); got != c.want {
			t.Errorf("apiEndpoint(%q, %q) = %q, want %q", c.addr, c.nodeIP, got, c.want)
		}
	}
	if ip, err := kubernetesServiceIP("10.43.0.0/16"); err != nil || ip != "10.43.0.1" {
		t.Errorf("kubernetesServiceIP = %q, %v", ip, err)
	}
}

// TestKubernetesEndpoints: the kubernetes Service's EndpointSlice and
// Endpoints follow the registered API endpoints, a server that stops
// drops out, and one on another port is left out.
func TestKubernetesEndpoints(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	register := func(ep string) context.CancelFunc {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = env.Store.RegisterAPIEndpoint(rctx, ep, 0)
		}()
		stop := func() {
			cancel()
			<-done
		}
		t.Cleanup(stop)
		return stop
	}
	addrs := func(self string) ([]string, []string) {
		t.Helper()
		if err := syncKubernetesEndpoints(ctx, env.Clientset, env.Store, self); err != nil {
			t.Fatal(err)
		}
		var fromSlice, fromEndpoints []string
		if s, err := env.Clientset.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
			if s.Labels[discoveryv1.LabelServiceName] != "kubernetes" {
				t.Errorf("slice labels %v", s.Labels)
			}
			for _, e := range s.Endpoints {
				fromSlice = append(fromSlice, e.Addresses...)
			}
			if len(s.Endpoints) > 0 && (len(s.Ports) != 1 || *s.Ports[0].Port != 6443 || *s.Ports[0].Name != "https") {
				t.Errorf("slice ports %+v", s.Ports)
			}
		}
		if e, err := env.Clientset.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{}); err == nil {
			for _, sub := range e.Subsets {
				for _, a := range sub.Addresses {
					fromEndpoints = append(fromEndpoints, a.IP)
				}
			}
		}
		return fromSlice, fromEndpoints
	}
	waitFor := func(self string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, e := addrs(self)
			if slices.Equal(s, want) && slices.Equal(e, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("endpoints: slice %v, Endpoints %v; want %v", s, e, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if s, e := addrs(""); s != nil || e != nil {
		t.Fatalf("with no server listed: slice %v, Endpoints %v", s, e)
	}
	// A server's own endpoint counts before its registration lands.
	if s, e := addrs("10.0.0.5:6443"); !slices.Equal(s, []string{"10.0.0.5"}) || !slices.Equal(e, []string{"10.0.0.5"}) {
		t.Fatalf("with only this server: slice %v, Endpoints %v", s, e)
	}
	stopA := register("10.0.0.5:6443")
	register("10.0.0.6:6443")
	register("10.0.0.7:7443")
	waitFor("10.0.0.5:6443", "10.0.0.5", "10.0.0.6")
	waitFor("", "10.0.0.5", "10.0.0.6")
	stopA()
	waitFor("", "10.0.0.6")
}
