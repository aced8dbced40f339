// Package store owns kiln's etcd: it starts an embedded single-member etcd
// in DATA_DIR/etcd (client URL on loopback) or connects to an external
// cluster, compacts old revisions periodically, and exposes the few
// key-value operations the API server needs with Kubernetes semantics:
// create-if-absent, compare-and-swap update and delete on the mod revision,
// consistent paged lists and watches that report compaction. With the
// embedded member, reads and writes call its KV service in process rather
// than over gRPC; watches, leases and compaction use the gRPC client, which
// Client also returns.
//
// Only the API server talks to the store; every other component goes
// through the API. The one key outside /registry that cmd uses is
// BootstrapKey: servers sharing an external cluster exchange their sealed
// CA and tokens there (Bootstrap) before any of them serves.
//
//	s, err := store.New(store.Config{DataDir: "/var/lib/kiln/etcd"})
//	go s.Run(ctx)
//	<-s.Ready()
//	kv, err := s.Get(ctx, store.Key("", "pods", "default", "web"))
package store
