// Package replicaset is kiln's ReplicaSet controller, kube's
// pkg/controller/replicaset written afresh: it keeps spec.replicas pods
// of every ReplicaSet alive and reports them in status.
//
// It owns the Pods it creates (a controller ownerReference with
// blockOwnerDeletion), adopts orphan Pods its selector matches, releases
// owned Pods that no longer match, and writes ReplicaSet status. It talks
// to the API server only: informers on ReplicaSets and Pods from a shared
// factory, a rate-limited workqueue of "namespace/name" keys, and an
// idempotent sync per key that creates, deletes and patches Pods.
//
// Expectations (kube's ControllerExpectations) remember the creates and
// deletes a sync issued until the Pod informer has observed them, and no
// further creates or deletes happen for that ReplicaSet until then (or
// until they expire after ExpectationsTimeout), so a slow watch never
// makes the controller count a Pod twice or miss one and double-create.
// Writes in flight when Run's context ends are finished before Run
// returns, so a successor started after Run returned lists every Pod this
// instance created.
//
// With Config.Events every Pod created or deleted is an Event about the
// ReplicaSet (SuccessfulCreate "Created pod: web-7d9-x2k4p",
// SuccessfulDelete, FailedCreate with the API's error, FailedDelete), as
// kubectl describe rs shows them in kube.
//
//	c, err := replicaset.New(replicaset.Config{Client: cs, Informers: f})
//	if err != nil { ... }
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package replicaset
