package kubelet

import (
	"context"
	"fmt"
	"maps"
	goruntime "runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"kiln.dev/kiln/components/internal/localpath"
)

// nodeLeaseNamespace holds one Lease per Node, renewed by its kubelet.
const nodeLeaseNamespace = "kube-node-lease"

// registerNode creates the Node, or brings an existing one's labels and
// status up to date, retrying until it succeeds or ctx ends.
func (k *Kubelet) registerNode(ctx context.Context) error {
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 1 << 30, Cap: 7 * time.Second}
	for {
		err := k.tryRegisterNode(ctx)
		if err == nil {
			k.log.Info("node registered")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k.log.Warn("registering node", logKeyError, err)
		t := time.NewTimer(backoff.Step())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (k *Kubelet) tryRegisterNode(ctx context.Context) error {
	nodes := k.client.CoreV1().Nodes()
	status, err := k.nodeStatus(ctx, nil)
	if err != nil {
		return err
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Labels: k.nodeLabels(), Annotations: k.nodeAnnotations()},
		Status:     status,
	}
	created, err := nodes.Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		// Create ignores status, as for any object with a status
		// subresource: write it now.
		created.Status = status
		_, err = nodes.UpdateStatus(ctx, created, metav1.UpdateOptions{})
		return err
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node: %w", err)
	}
	cur, err := nodes.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node: %w", err)
	}
	want := k.nodeLabels()
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	changed := false
	for key, v := range want {
		if cur.Labels[key] != v {
			cur.Labels[key], changed = v, true
		}
	}
	for key, v := range k.nodeAnnotations() {
		if cur.Annotations[key] != v {
			cur.Annotations[key], changed = v, true
		}
	}
	if changed {
		if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node labels: %w", err)
		}
	}
	if cur.Status, err = k.nodeStatus(ctx, cur); err != nil {
		return err
	}
	if _, err := nodes.UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update node status: %w", err)
	}
	return nil
}

// nodeAnnotations are what the kubelet publishes on its Node: where the
// local-path provisioner puts this node's volumes.
func (k *Kubelet) nodeAnnotations() map[string]string {
	return map[string]string{localpath.NodeDirAnnotation: k.cfg.StorageDir}
}

// nodeLabels are the well-known labels plus Config.NodeLabels.
func (k *Kubelet) nodeLabels() map[string]string {
	l := map[string]string{
		corev1.LabelHostname:   k.cfg.NodeName,
		corev1.LabelOSStable:   goruntime.GOOS,
		corev1.LabelArchStable: goruntime.GOARCH,
	}
	maps.Copy(l, k.cfg.NodeLabels)
	return l
}

// nodeStatus computes the Node's status; old (may be nil) keeps the
// conditions' transition times and other writers' fields.
func (k *Kubelet) nodeStatus(ctx context.Context, old *corev1.Node) (corev1.NodeStatus, error) {
	capacity := k.capacity()
	s := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: k.cfg.NodeIP},
			{Type: corev1.NodeHostName, Address: k.cfg.NodeName},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(k.port)}},
		NodeInfo:        k.nodeInfo(),
	}
	if old != nil {
		s.Images = old.Status.Images
		s.VolumesInUse, s.VolumesAttached = old.Status.VolumesInUse, old.Status.VolumesAttached
	}
	rs, err := k.rt.Status(ctx)
	if err != nil {
		rs.Reason = err.Error()
	}
	now := metav1.NewTime(k.now().Truncate(time.Second))
	var prev map[corev1.NodeConditionType]corev1.NodeCondition
	if old != nil {
		prev = map[corev1.NodeConditionType]corev1.NodeCondition{}
		for _, c := range old.Status.Conditions {
			prev[c.Type] = c
		}
	}
	cond := func(t corev1.NodeConditionType, status bool, reason, msg string) corev1.NodeCondition {
		c := corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
		if status {
			c.Status = corev1.ConditionTrue
		}
		if p, ok := prev[t]; ok && p.Status == c.Status {
			c.LastTransitionTime = p.LastTransitionTime
		}
		return c
	}
	mem, disk, pid := false, false, false
	if !k.cfg.NoHostPressure {
		mem, disk, pid = hostPressure(k.cfg.RootDir)
	}
	s.Conditions = []corev1.NodeCondition{
		pick(mem, cond(corev1.NodeMemoryPressure, true, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
			cond(corev1.NodeMemoryPressure, false, "KubeletHasSufficientMemory", "kubelet has sufficient memory available")),
		pick(disk, cond(corev1.NodeDiskPressure, true, "KubeletHasDiskPressure", "kubelet has disk pressure"),
			cond(corev1.NodeDiskPressure, false, "KubeletHasNoDiskPressure", "kubelet has no disk pressure")),
		pick(pid, cond(corev1.NodePIDPressure, true, "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
			cond(corev1.NodePIDPressure, false, "KubeletHasSufficientPID", "kubelet has sufficient PID available")),
	}
	if rs.RuntimeReady && rs.NetworkReady {
		s.Conditions = append(s.Conditions, cond(corev1.NodeReady, true, "KubeletReady", "kubelet is posting ready status"))
	} else {
		msg := "container runtime is down"
		if rs.RuntimeReady {
			msg = "container runtime network not ready: NetworkReady=false"
		}
		if rs.Reason != "" {
			msg += ": " + rs.Reason
		}
		s.Conditions = append(s.Conditions, cond(corev1.NodeReady, false, "KubeletNotReady", msg))
	}
	return s, nil
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// nodeLoop keeps the Node's status current and hands spec.podCIDR to
// the runtime. It writes the status when something other than the
// heartbeat changed, or StatusReportPeriod after the last write.
func (k *Kubelet) nodeLoop(ctx context.Context) {
	t := time.NewTicker(k.cfg.StatusPeriod)
	defer t.Stop()
	var lastCIDR string
	var lastReport time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.nodeChanged:
		}
		node, err := k.currentNode(ctx)
		if apierrors.IsNotFound(err) {
			// Someone deleted the Node: register it again.
			if err := k.registerNode(ctx); err == nil {
				lastReport = k.now()
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				k.log.Warn("reading node", logKeyError, err)
			}
			continue
		}
		if cidr := node.Spec.PodCIDR; cidr != "" && cidr != lastCIDR {
			if err := k.rt.SetPodCIDR(ctx, cidr); err != nil {
				k.log.Warn("setting pod CIDR", "podCIDR", cidr, logKeyError, err)
			} else {
				lastCIDR = cidr
				k.log.Info("pod CIDR set", "podCIDR", cidr)
				k.wakeAll() // pods waiting for a sandbox can have one now
			}
		}
		status, err := k.nodeStatus(ctx, node)
		if err != nil {
			continue
		}
		if !statusChanged(node.Status, status) && k.now().Sub(lastReport) < k.cfg.StatusReportPeriod {
			continue
		}
		node.Status = status
		if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			if ctx.Err() == nil && !apierrors.IsConflict(err) {
				k.log.Warn("updating node status", logKeyError, err)
			}
			signal(k.nodeChanged) // try again without waiting a period
			continue
		}
		lastReport = k.now()
	}
}

// currentNode is the Node from the informer's cache, or from the API
// before the cache has it.
func (k *Kubelet) currentNode(ctx context.Context) (*corev1.Node, error) {
	if obj, ok, err := k.nodeInformer.GetIndexer().GetByKey(k.cfg.NodeName); err == nil && ok {
		if n, ok := obj.(*corev1.Node); ok {
			return n.DeepCopy(), nil
		}
	}
	return k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
}

// statusChanged compares Node statuses ignoring heartbeat times.
func statusChanged(a, b corev1.NodeStatus) bool {
	strip := func(s corev1.NodeStatus) corev1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return !apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// wakeAll makes every pod worker sync.
func (k *Kubelet) wakeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.workers {
		w.signal()
	}
}

// leaseLoop renews the Node's Lease every quarter of its duration, the
// heartbeat the node lifecycle controller watches.
func (k *Kubelet) leaseLoop(ctx context.Context) {
	period := k.cfg.LeaseDuration / 4
	// A failed renewal is retried soon, doubling from 200ms up to the
	// period, as kube's lease controller does: waiting a whole period
	// after a request that hung on a dead server spends most of the
	// grace period before the Node goes NotReady.
	const firstRetry = 200 * time.Millisecond
	retry := firstRetry
	for {
		// A request is never let hang longer than a period (a server
		// gone silent keeps its connection open until TCP gives up).
		rctx, cancel := context.WithTimeout(ctx, period)
		err := k.renewLease(rctx)
		cancel()
		wait := period
		switch {
		case err != nil && ctx.Err() == nil:
			k.log.Warn("renewing node lease", logKeyError, err, "retryIn", retry)
			wait = retry
			retry = min(2*retry, period)
		case err == nil:
			retry = firstRetry
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(nodeLeaseNamespace)
	now := metav1.NewMicroTime(k.now())
	secs := int32(max((k.cfg.LeaseDuration+time.Second-1)/time.Second, 1))
	holder := k.cfg.NodeName
	lease, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: nodeLeaseNamespace},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, RenewTime: &now},
		}
		// The Lease belongs to the Node, so that deleting the Node
		// deletes it (garbage collector).
		if node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{}); err == nil {
			lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // renewed at the next period
		}
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &holder, &secs, &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("update lease: %w", err)
	}
	return nil
}
