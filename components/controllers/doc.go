// Package controllers is kiln's controller manager: it runs one
// sub-package per controller (replicaset, deployment, namespace,
// garbagecollector, endpointslice, ...) on one shared informer factory,
// under leader election on a coordination.k8s.io Lease so that only one
// server runs them at a time. Every controller is a client of the API
// server like any other: informers, a rate-limited workqueue of keys, and
// an idempotent sync(key).
//
// Each controller package follows the same contract:
//
//	c, err := replicaset.New(replicaset.Config{Client: cs, Informers: f})
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package controllers
