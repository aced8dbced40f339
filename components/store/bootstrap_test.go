package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

func TestStore_Bootstrap(t *testing.T) {
	c := testenv.StartEtcdCluster(t, 3)
	newStore := func() *store.Store {
		s, err := store.New(store.Config{Endpoints: c.Endpoints, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Two servers start at once: exactly one value wins and both get it.
	var wg sync.WaitGroup
	got := make([][]byte, 2)
	errs := make([]error, 2)
	for i := range got {
		wg.Go(func() {
			got[i], errs[i] = newStore().Bootstrap(t.Context(), func() ([]byte, error) {
				return fmt.Appendf(nil, "server-%d", i), nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Bootstrap %d: %v", i, err)
		}
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Fatalf("racing servers got different bootstrap data: %q and %q", got[0], got[1])
	}

	// A later server reads it without creating, even with a member down.
	c.Stop(0)
	v, err := newStore().Bootstrap(t.Context(), func() ([]byte, error) {
		return nil, errors.New("create called although the data exists")
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v, got[0]) {
		t.Errorf("later Bootstrap = %q, want %q", v, got[0])
	}
	c.Start(0)

	// An embedded etcd has no one to share with.
	embedded, err := store.New(store.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := embedded.Bootstrap(t.Context(), nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Bootstrap with an embedded etcd = %v, want ErrNotFound", err)
	}
}
