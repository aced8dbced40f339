// Package scheduler is kiln's scheduler: it places every pod that has no
// spec.nodeName and whose spec.schedulerName is kiln's (Config.SchedulerName)
// or "default-scheduler" on a node, with kube-scheduler's rules and
// messages, and writes nothing but a Binding (pods/binding) for each, plus
// the selected-node annotation of its WaitForFirstConsumer claims, and the
// PodScheduled condition and an Event when no node fits.
//
// It talks to the API server only: Pod, Node, Namespace,
// PersistentVolumeClaim, PersistentVolume and StorageClass informers from
// a shared factory feed a cache of nodes and placed pods and a queue of
// pods to place; a decision is a pure function of a snapshot of the cache
// (NOMAD's "plan over a snapshot"), and its result is written by a bounded
// pool of writer goroutines so that the next decision need not wait for
// the API.
//
//   - cache: nodes, bound pods (as the informer shows them) and assumed
//     pods (decided, bind in flight). An assumed pod counts on its node at
//     once; a failed bind forgets it. Each node's entry is immutable and
//     replaced on change, so a snapshot update copies only pointers of the
//     nodes that changed since the last cycle.
//   - queue: an active heap ordered by pod priority, then arrival; a
//     backoff heap (1 s doubling per attempt to 10 s); and the
//     unschedulable set of pods no node fitted, moved back to the active
//     or backoff heap by cluster events that may help them: a node added or
//     its labels, taints, allocatable or unschedulable changed, a placed
//     pod deleted or finished, and (for pods rejected by inter-pod affinity
//     or topology spread) a pod placed or relabelled. A pod moved by an
//     event is tried at once when nothing else waits.
//   - decision: the filters NodeUnschedulable, NodeName, TaintToleration
//     (NoSchedule, NoExecute), NodeAffinity (nodeSelector and required
//     affinity: In, NotIn, Exists, DoesNotExist, Gt, Lt, matchFields),
//     NodePorts, NodeResourcesFit (cpu, memory, ephemeral-storage, pods and
//     extended resources; init containers and sidecars counted as kube
//     does, plus overhead), PodTopologySpread (DoNotSchedule) and
//     InterPodAffinity (required affinity and anti-affinity, both ways)
//     and VolumeBinding (a missing claim, or an unbound one of a class
//     that binds Immediate, fits nowhere; a bound claim's volume node
//     affinity limits the nodes; an unbound WaitForFirstConsumer claim
//     fits anywhere, and gets volume.kubernetes.io/selected-node before
//     the pod's Binding, for its provisioner), run on nodes in parallel until enough fit (kube's adaptive
//     percentageOfNodesToScore: 500 of 5,000 nodes); then the scores
//     LeastAllocated, BalancedAllocation, preferred node affinity,
//     preferred inter-pod affinity and anti-affinity, spreading (the pod's
//     ScheduleAnyway constraints, or by default the pods of its owner
//     across nodes and zones) and PreferNoSchedule taints, with kube's
//     normalizations and weights; ties are broken at random.
//   - when nothing fits: PodScheduled=False, reason Unschedulable, and a
//     Warning Event FailedScheduling, both with kube's message, e.g.
//     "0/3 nodes are available: 1 node(s) had untolerated taint {k: v},
//     2 Insufficient cpu."; repeats of a message bump the event's count.
//     Preemption is not implemented. A bound pod gets a Normal Event
//     Scheduled, best effort: beyond 20 a second (bursts of 100) they are
//     dropped rather than compete with binds.
//
// Two schedulers must not run at once: like kube-scheduler, it relies on
// leader election (it runs inside the controller manager). The API server
// refuses to bind a pod that already has a node, so a race never binds a
// pod twice; and Run finishes its binds in flight before returning, so a
// successor's informer lists every pod this one placed and it does not
// over-commit a node.
//
//	f := informers.NewSharedInformerFactory(cs, 0)
//	s, err := scheduler.New(scheduler.Config{Client: cs, Informers: f})
//	if err != nil { ... }
//	f.Start(ctx.Done())
//	err = s.Run(ctx) // blocks until ctx is done
package scheduler
