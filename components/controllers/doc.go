// Package controllers is kiln's controller manager: it runs one
// sub-package per controller (replicaset, deployment, namespace,
// garbagecollector, endpointslice, ...) on one shared informer factory,
// under leader election on a coordination.k8s.io Lease so that only one
// server runs them at a time. Every controller is a client of the API
// server like any other: informers, a rate-limited workqueue of keys, and
// an idempotent sync(key).
//
// The controllers share one event broadcaster as well (client-go's
// record, as the kubelet uses): each records as its own component
// ("replicaset-controller", "deployment-controller", ...), and one
// correlator folds repeats into counts and drops floods before one writer
// sends them to the API, so ten controllers do not run ten.
//
// Each controller package follows the same contract:
//
//	c, err := replicaset.New(replicaset.Config{Client: cs, Informers: f, Events: b})
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
//
// and the manager builds them on what it shares:
//
//	m, err := controllers.New(controllers.Config{Client: cs, Controllers: map[string]controllers.Builder{
//		"replicaset": func(s controllers.Shared) (controllers.Runnable, error) {
//			return replicaset.New(replicaset.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
//		},
//	}})
//	err = m.Run(ctx) // campaigns for the Lease; runs the controllers while leading
package controllers
