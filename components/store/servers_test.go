package store

import (
	"context"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestStore_RegisterServer(t *testing.T) {
	s := startStore(t, Config{})
	servers := func() []string {
		t.Helper()
		urls, err := s.Servers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return urls
	}
	waitServers := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for got := servers(); !slices.Equal(got, want); got = servers() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: Servers = %v, want %v", what, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	run := func(url string) (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.RegisterServer(ctx, url, 5*time.Second) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("RegisterServer(%s): %v", url, err)
			}
		}
	}
	stopA := run("https://10.0.0.1:6443")
	stopB := run("https://10.0.0.2:6443")
	defer stopB()
	waitServers("both registered", "https://10.0.0.1:6443", "https://10.0.0.2:6443")

	// A clean stop deregisters at once.
	stopA()
	if got := servers(); !slices.Equal(got, []string{"https://10.0.0.2:6443"}) {
		t.Errorf("after a clean stop Servers = %v", got)
	}

	// A lost lease (the datastore forgot it) is granted again.
	resp, err := s.Client().Get(t.Context(), serversPrefix+"https://10.0.0.2:6443")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get registration: %v", err)
	}
	if _, err := s.Client().Revoke(t.Context(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	waitServers("registered again after the lease was lost", "https://10.0.0.2:6443")
}
