// Package daemonset is kiln's DaemonSet controller, a subset of kube's
// pkg/controller/daemon written afresh: it keeps one Pod of every
// DaemonSet on each eligible Node, replaces Pods whose template is out of
// date (RollingUpdate or OnDelete), and reports them in status.
//
// A Node is eligible (NodeShouldRunDaemonPod) when it is not being
// deleted, its labels match spec.template.spec.nodeSelector and the
// template's required node affinity, and the Pod tolerates every
// NoSchedule and NoExecute taint on it. DaemonSet Pods get kube's default
// tolerations (not-ready and unreachable NoExecute; unschedulable, disk-,
// memory- and pid-pressure NoSchedule; network-unavailable NoSchedule with
// hostNetwork). A Pod already running keeps running on a Node that gained
// an untolerated NoSchedule taint; only NoExecute, a changed label or the
// Node's deletion evicts it. Pods on Nodes that are no longer eligible or
// no longer exist, and all but the oldest of several Pods on one Node, are
// deleted; failed Pods are deleted and then replaced.
//
// Placement: each Pod gets both a required node affinity on
// metadata.name (matchFields In [node]), which is what modern kube sets
// so that the scheduler binds it, and spec.nodeName, which binds it
// directly. kiln does not run a scheduler in every setup; with nodeName
// set the Pod lands on its Node with or without one, and the affinity
// keeps the Pod's intent explicit for a scheduler or a reader.
//
// Revisions: every Pod carries the controller-revision-hash label, a hash
// of spec.template (and status.collisionCount), and pod-template-generation
// (metadata.generation when it was created). As kube, the controller keeps
// each template in a ControllerRevision <name>-<hash> owned by the
// DaemonSet, numbered in order, whose data is the patch that restores the
// template: `kubectl rollout history ds/x` lists them and `kubectl rollout
// undo ds/x` goes back to one, whose revision then becomes the newest.
// Old revisions beyond spec.revisionHistoryLimit (default 10) go, oldest
// first, unless a Pod still carries their hash.
//
// Events: with Config.Events, every Pod created or deleted is an Event
// about the DaemonSet (SuccessfulCreate, SuccessfulDelete, FailedCreate,
// FailedDelete), as kubectl describe ds shows them in kube.
//
// Rolling update: Pods whose hash differs from the template's are deleted
// while at most spec.updateStrategy.rollingUpdate.maxUnavailable (default
// 1; an int or a percentage of desiredNumberScheduled, rounded up) Nodes
// that should run a Pod have no available one; the new Pod is created
// once the old one is gone, and counts as available once Ready for
// minReadySeconds. Pods already unavailable are replaced regardless of
// the budget. maxSurge is not implemented (treated as 0). With OnDelete,
// out-of-date Pods stay until someone deletes them.
//
// Only Pods whose controller ownerReference names the DaemonSet and whose
// labels match its selector are its own; orphans are not adopted.
//
// Expectations (kube's ControllerExpectations) remember the creates and
// deletes a sync issued until the Pod informer has observed them, and
// nothing more is created or deleted for that DaemonSet until then, so a
// slow watch never makes the controller create two Pods for one Node.
//
//	c, err := daemonset.New(daemonset.Config{Client: cs, Informers: f})
//	if err != nil { ... }
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package daemonset
