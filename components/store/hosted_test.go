package store

import (
	"bytes"
	"crypto/rand"
	"slices"
	"testing"
)

// A pack larger than one etcd request is stored in chunks and read back
// whole; packs list oldest first; a ref moves only from the value the
// caller saw.
func TestStore_hostedRecord(t *testing.T) {
	s := startStore(t, Config{})
	ctx := t.Context()
	big := make([]byte, 3*hostedChunkBytes+123)
	_, _ = rand.Read(big)
	id1, err := s.PutHostedPack(ctx, "app", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.PutHostedPack(ctx, "app", bytes.NewReader([]byte("small")))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.HostedPack(ctx, "app", id1); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("pack %s read back: %d bytes, %v; want the %d written", id1, len(got), err, len(big))
	}
	// A chunk changed under the manifest is caught by the digest.
	if _, err := s.kvAPI().Put(ctx, hostedKey("app", "chunks", id1, "000001"), "tampered"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.HostedPack(ctx, "app", id1); err == nil {
		t.Error("a tampered pack was read back without an error")
	}

	for _, tc := range []struct {
		old, new string
		want     bool
	}{
		{"", "aaa", true},     // create
		{"", "bbb", false},    // create over an existing ref
		{"zzz", "bbb", false}, // stale old value
		{"aaa", "bbb", true},  // fast-forward
	} {
		if ok, err := s.SwapHostedRef(ctx, "app", "refs/heads/main", tc.old, tc.new); err != nil || ok != tc.want {
			t.Errorf("swap %q -> %q: %v, %v; want %v", tc.old, tc.new, ok, err, tc.want)
		}
	}
	st, err := s.HostedState(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Packs, []string{id1, id2}) || st.Refs["refs/heads/main"] != "bbb" || len(st.Refs) != 1 {
		t.Errorf("state %+v, want packs [%s %s] and main at bbb", st, id1, id2)
	}
	// Another repository's record is apart.
	if other, err := s.HostedState(ctx, "app2"); err != nil || len(other.Packs) != 0 || len(other.Refs) != 0 {
		t.Errorf("app2's state %+v, %v; want empty", other, err)
	}
	if ok, err := s.SwapHostedRef(ctx, "app", "refs/heads/main", "bbb", ""); err != nil || !ok {
		t.Errorf("delete: %v, %v", ok, err)
	}
}
