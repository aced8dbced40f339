package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// startStore runs an embedded member in a temp dir and stops it at cleanup.
func startStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.DataDir == "" && len(cfg.Endpoints) == 0 {
		cfg.DataDir = t.TempDir()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("store stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("store not ready in 30s")
	}
	return s
}

func TestStore_CRUD(t *testing.T) {
	s := startStore(t, Config{})
	ctx := t.Context()
	key := Key("", "pods", "default", "a")
	nsKey := Key("", "namespaces", "", "default")

	if _, err := s.Create(ctx, key, []byte("x"), WriteOptions{Require: []string{nsKey}}); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("create without namespace: got %v, want precondition", err)
	}
	if _, err := s.Create(ctx, nsKey, []byte("ns"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	rev, err := s.Create(ctx, key, []byte("x"), WriteOptions{Require: []string{nsKey}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, key, []byte("y"), WriteOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	rev2, err := s.Update(ctx, key, []byte("y"), rev, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, key, []byte("z"), rev, WriteOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: got %v, want ErrConflict", err)
	}
	kv, err := s.Get(ctx, key)
	if err != nil || string(kv.Value) != "y" || kv.ModRevision != rev2 {
		t.Fatalf("get: %+v %v", kv, err)
	}
	// An allocation travels with its object and cannot be taken twice.
	alloc := Extra{Key: "/kiln/alloc/1", Value: []byte("a")}
	if _, err := s.Create(ctx, Key("", "services", "default", "s1"), []byte("s"), WriteOptions{Extras: []Extra{alloc}}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, Key("", "services", "default", "s2"), []byte("s"), WriteOptions{Extras: []Extra{alloc}})
	var pe *PreconditionError
	if !errors.As(err, &pe) || !pe.Exists || pe.Key != alloc.Key {
		t.Fatalf("double allocation: got %v", err)
	}
	if _, err := s.Get(ctx, Key("", "services", "default", "s2")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("half-written service: %v", err)
	}
	if _, err := s.Delete(ctx, key, rev, WriteOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale delete: got %v", err)
	}
	if _, err := s.Delete(ctx, key, rev2, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestStore_ListPagesAtOneRevision(t *testing.T) {
	s := startStore(t, Config{})
	ctx := t.Context()
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if _, err := s.Create(ctx, Key("apps", "deployments", "ns", n), []byte(n), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A key of another resource with a shared name prefix must not leak in.
	if _, err := s.Create(ctx, Key("apps", "deploymentsx", "ns", "z"), []byte("z"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	prefix := Prefix("apps", "deployments", "")
	p1, err := s.List(ctx, prefix, ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p1.KVs) != 2 || !p1.More || p1.Remaining != 3 {
		t.Fatalf("page 1: %d more=%v remaining=%d", len(p1.KVs), p1.More, p1.Remaining)
	}
	// A write between pages is not seen by the second page.
	if _, err := s.Create(ctx, Key("apps", "deployments", "ns", "f"), []byte("f"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	p2, err := s.List(ctx, prefix, ListOptions{Revision: p1.Revision, StartKey: p1.KVs[1].Key + "\x00"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.KVs) != 3 || p2.More {
		t.Fatalf("page 2: %d more=%v", len(p2.KVs), p2.More)
	}
	cur, _ := s.CurrentRevision(ctx)
	if err := s.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, prefix, ListOptions{Revision: p1.Revision}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("list at compacted revision: got %v", err)
	}
	if err := s.CheckRevision(ctx, p1.Revision); !errors.Is(err, ErrCompacted) {
		t.Fatalf("check compacted: %v", err)
	}
}

func TestStore_WatchFromRevision(t *testing.T) {
	s := startStore(t, Config{})
	ctx := t.Context()
	prefix := Prefix("", "configmaps", "")
	rev, _ := s.Create(ctx, prefix+"ns/a", []byte("1"), WriteOptions{})
	rev2, _ := s.Update(ctx, prefix+"ns/a", []byte("2"), rev, WriteOptions{})
	if _, err := s.Delete(ctx, prefix+"ns/a", rev2, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ch := s.Watch(ctx, prefix, rev)
	want := []struct {
		typ EventType
		val string
	}{{Put, "1"}, {Put, "2"}, {Deleted, "2"}}
	for i, w := range want {
		select {
		case e := <-ch:
			if e.Type != w.typ || string(e.KV.Value) != w.val {
				t.Fatalf("event %d: %+v", i, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d: timeout", i)
		}
	}
	cur, _ := s.CurrentRevision(ctx)
	if err := s.Compact(ctx, cur); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-s.Watch(ctx, prefix, rev):
		if e.Type != Error || !errors.Is(e.Err, ErrCompacted) {
			t.Fatalf("watch from compacted: %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch from compacted: timeout")
	}
}

func TestStore_TTL(t *testing.T) {
	s := startStore(t, Config{})
	ctx := t.Context()
	key := Key("", "events", "default", "e1")
	rev, err := s.Create(ctx, key, []byte("e"), WriteOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, key, []byte("e2"), rev, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Get(ctx, key)
	if err != nil || resp.Kvs[0].Lease == 0 {
		t.Fatalf("lease lost on update: %v %+v", err, resp)
	}
}

func TestStore_RestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	key := Key("", "secrets", "default", "s")
	func() {
		s, err := New(Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		c, cancel := contextWithCancel(t)
		done := make(chan error, 1)
		go func() { done <- s.Run(c) }()
		<-s.Ready()
		if _, err := s.Create(ctx, key, []byte("v"), WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()
	s := startStore(t, Config{DataDir: dir})
	kv, err := s.Get(ctx, key)
	if err != nil || string(kv.Value) != "v" {
		t.Fatalf("after restart: %v %q", err, kv.Value)
	}
}

func TestNew_validates(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("want error for missing dataDir")
	}
	if _, err := New(Config{Endpoints: []string{"http://x"}, CertFile: "c"}); err == nil {
		t.Fatal("want error for certFile without keyFile")
	}
}

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	return context.WithCancel(t.Context())
}

// An external datastore is any etcd reachable by URL; here a second Store
// uses the first one's embedded member as its external cluster.
func TestStore_ExternalEndpoints(t *testing.T) {
	embedded := startStore(t, Config{})
	external := startStore(t, Config{Endpoints: []string{embedded.ClientURL()}, CompactInterval: -1})
	ctx := t.Context()
	key := Key("", "configmaps", "default", "shared")
	if _, err := external.Create(ctx, key, []byte("v"), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := embedded.Get(ctx, key)
	if err != nil || string(kv.Value) != "v" {
		t.Fatalf("write through external client not visible: %v %q", err, kv.Value)
	}
}

func TestStore_ExternalUnreachable(t *testing.T) {
	s, err := New(Config{Endpoints: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if err := s.Run(ctx); err == nil {
		t.Fatal("Run against an unreachable etcd returned nil")
	}
}

func TestStore_CompactLoopKeepsRecentHistory(t *testing.T) {
	s := startStore(t, Config{CompactInterval: 20 * time.Millisecond, CompactMinAge: time.Hour, CompactRetention: 5})
	ctx := t.Context()
	var first int64
	for i := 0; i < 20; i++ {
		rev, err := s.Create(ctx, Key("", "configmaps", "ns", fmt.Sprint(i)), []byte("v"), WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = rev
		}
	}
	// With a retention of 5 revisions the compactor must compact the
	// first writes away, even though they are younger than CompactMinAge.
	deadline := time.Now().Add(10 * time.Second)
	for s.CheckRevision(ctx, first) == nil {
		if time.Now().After(deadline) {
			t.Fatal("revision still readable after 10s: compaction did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cur, _ := s.CurrentRevision(ctx)
	if err := s.CheckRevision(ctx, cur-4); err != nil {
		t.Fatalf("recent revision compacted: %v", err)
	}
}

// TestStore_OldestRevision: the oldest revision a watch may start at is 1
// before any compaction and the compaction's revision after it, and a
// watch from there replays every later change.
func TestStore_OldestRevision(t *testing.T) {
	s := startStore(t, Config{CompactInterval: -1})
	ctx := t.Context()
	oldest, cur, err := s.OldestRevision(ctx)
	if err != nil || oldest != 1 || cur < 1 {
		t.Fatalf("fresh store: oldest %d, current %d, %v; want 1", oldest, cur, err)
	}
	var revs []int64
	for i := range 5 {
		rev, err := s.Create(ctx, Key("", "configmaps", "default", fmt.Sprint("c", i)), []byte("x"), WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, rev)
	}
	if err := s.Compact(ctx, revs[2]); err != nil {
		t.Fatal(err)
	}
	oldest, cur, err = s.OldestRevision(ctx)
	if err != nil || oldest != revs[2] || cur != revs[4] {
		t.Fatalf("after compaction at %d: oldest %d, current %d, %v; want %d, %d", revs[2], oldest, cur, err, revs[2], revs[4])
	}
	events := s.Watch(ctx, Prefix("", "configmaps", ""), oldest)
	for _, want := range revs[2:] {
		select {
		case e := <-events:
			if e.Type != Put || e.Revision != want {
				t.Fatalf("replay: got %v at %d, want a put at %d", e.Type, e.Revision, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("replay: no event at %d", want)
		}
	}
}
