// Package garbagecollector is kiln's garbage collector: it deletes objects
// whose owners are gone and carries out the Orphan and Foreground
// propagation policies that the API server records as finalizers, as
// kube-controller-manager's garbage collector does.
//
// It watches every resource that supports list, watch and delete (found
// by discovery, re-run every DiscoveryPeriod for new kinds; events are
// ignored, as kube ignores them) with metadata-only informer caches, and
// keeps an index from owner UID to dependents. A worker then settles one
// object at a time, always re-reading it and its owners from the API
// server before it writes:
//
//   - An object all of whose owners are gone (NotFound, or the name now has
//     another UID) is deleted, propagation Background. An owner that is
//     gone is dropped from an object that still has a live owner, so a
//     dependent with several owners goes only when the last one does.
//   - An owner being deleted with the "orphan" finalizer loses its
//     ownerReference from every dependent, then the finalizer.
//   - An owner being deleted with the "foregroundDeletion" finalizer has
//     its dependents deleted (Foreground for those with blocking
//     dependents of their own); once no dependent with blockOwnerDeletion
//     remains, the finalizer goes. A ring of owners waiting on each other
//     is broken by clearing blockOwnerDeletion on one edge, so cycles do
//     not block forever.
//
// Orphaning and finalizer removal decide from the index, so they wait
// until every informer has synced; deleting decides from live reads and
// never waits.
//
//	gc, err := garbagecollector.New(garbagecollector.Config{Client: cs, Dynamic: dyn})
//	err = gc.Run(ctx) // blocks until ctx is done
package garbagecollector
