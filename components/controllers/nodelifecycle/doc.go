// Package nodelifecycle notices Nodes whose kubelet has stopped reporting
// and moves their Pods off them, as kube-controller-manager's node
// lifecycle controller and its NoExecute taint manager do (RELIABILITY.md
// promise 9).
//
// A Node is healthy while its kubelet renews its Lease in kube-node-lease
// (named after the Node) or posts a new Ready heartbeat. Like kube, the
// controller times these against its own clock: it records when it saw
// either value change, so clock skew between the kubelet and the server
// does not matter, and a controller that starts (or takes over) gives
// every Node a full grace period. When no change has been seen for
// Config.GracePeriod the controller:
//
//   - sets the Node's Ready condition (and any MemoryPressure,
//     DiskPressure and PIDPressure conditions) to Unknown, reason
//     NodeStatusUnknown, "Kubelet stopped posting node status.";
//   - taints it node.kubernetes.io/unreachable, NoExecute (with
//     timeAdded) and NoSchedule (node.kubernetes.io/not-ready instead
//     while the kubelet reports Ready=False): the scheduler places no new
//     Pod there, since every Pod tolerates the NoExecute taint for a
//     while;
//   - sets the Ready condition of its Pods to False;
//   - records a NodeNotReady Event about the Node and each such Pod, as
//     kube does, when Config.Events is set.
//
// Every Pod on a Node with NoExecute taints is evicted (deleted, with its
// own grace period) once it does not tolerate one of them, or once the
// shortest tolerationSeconds of the tolerations matching a taint has run
// out since that taint's timeAdded (a TaintManagerEviction Event says
// so); the Node is requeued for the earliest such expiry. The API server
// gives every Pod a 300 s toleration of both NoExecute taints by default. When the kubelet comes back and posts Ready=True, the
// taints are removed, which cancels every pending eviction: the next sync
// finds nothing to evict.
//
//	c, err := nodelifecycle.New(nodelifecycle.Config{Client: cs, Informers: f})
//	f.Start(ctx.Done())
//	err = c.Run(ctx)
package nodelifecycle
