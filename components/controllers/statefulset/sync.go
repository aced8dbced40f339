package statefulset

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/components/controllers/worker"
)

// sync brings one StatefulSet one step closer to its spec and writes its
// status. Each step that must wait (a Pod to become Ready, or to go)
// returns; the Pod's change queues the set again.
func (c *Controller) sync(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	set, err := c.setLister.StatefulSets(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil // its Pods and revisions go with it (garbage collector)
	}
	if err != nil {
		return err
	}
	if set.DeletionTimestamp != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil || sel.Empty() {
		c.log.Warn("invalid selector", "statefulset", key, "err", err)
		return nil // validation lets none through; nothing to match
	}
	all, err := c.podLister.Pods(ns).List(sel)
	if err != nil {
		return err
	}
	var pods []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == set.UID && ordinal(set, p) >= 0 {
			pods = append(pods, p)
		}
	}
	current, update, owned, err := c.revisions(ctx, set)
	if err != nil {
		return err
	}
	step := c.step(ctx, set, current, update, pods)
	status := computeStatus(set, current, update, pods, c.now())
	if err := c.writeStatus(ctx, set, status); err != nil {
		return errors.Join(step, err)
	}
	live := map[string]bool{current.Name: true, update.Name: true}
	for _, p := range pods {
		live[p.Labels[LabelRevision]] = true
	}
	if err := c.cleanupHistory(ctx, set, owned, live); err != nil {
		return errors.Join(step, err)
	}
	if step == nil && set.Spec.MinReadySeconds > 0 && status.ReadyReplicas > status.AvailableReplicas {
		// Nothing else changes when a Ready Pod's minReadySeconds pass.
		c.queue.AddAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second)
	}
	return step
}

// step makes the writes of one sync, as kube's updateStatefulSet does:
// missing Pods created (with their claims), failed ones deleted, Pods
// beyond the replicas removed from the highest ordinal down, then one Pod
// of an old revision replaced. With OrderedReady it stops at the first
// Pod that is not yet Running and Ready, or is going.
func (c *Controller) step(ctx context.Context, set *appsv1.StatefulSet, current, update *appsv1.ControllerRevision, pods []*corev1.Pod) error {
	start, replicas := startOrdinal(set), int(ptrOr(set.Spec.Replicas, 1))
	slots := make([]*corev1.Pod, replicas)
	var condemned []*corev1.Pod
	for _, p := range pods {
		if o := ordinal(set, p) - start; o >= 0 && o < replicas {
			slots[o] = p
		} else {
			condemned = append(condemned, p)
		}
	}
	// Highest ordinal first.
	slices.SortFunc(condemned, func(a, b *corev1.Pod) int { return ordinal(set, b) - ordinal(set, a) })
	ordered := set.Spec.PodManagementPolicy != appsv1.ParallelPodManagement

	for i, p := range slots {
		if p == nil {
			if err := c.createPod(ctx, set, current, update, start+i); err != nil {
				return err
			}
			if ordered {
				return nil
			}
			continue
		}
		if finished(p) && p.DeletionTimestamp == nil {
			// A failed or completed Pod is recreated under its name.
			if err := c.deletePod(ctx, set, p); err != nil {
				return err
			}
			if ordered {
				return nil
			}
			continue
		}
		if err := c.ensureClaims(ctx, set, p); err != nil {
			return err
		}
		if ordered && (p.DeletionTimestamp != nil || !runningAndReady(p)) {
			return nil
		}
	}
	for _, p := range condemned {
		if p.DeletionTimestamp != nil {
			if ordered {
				return nil
			}
			continue
		}
		if ordered && !runningAndReady(p) && hasUnhealthyBelow(condemned, p) {
			return nil
		}
		if err := c.releaseClaims(ctx, set, p); err != nil {
			return err
		}
		if err := c.deletePod(ctx, set, p); err != nil {
			return err
		}
		if ordered {
			return nil
		}
	}
	if set.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil
	}
	// RollingUpdate: from the highest ordinal down to the partition, one
	// Pod at a time, each replaced only once all above it are healthy.
	partition := 0
	if ru := set.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		partition = int(*ru.Partition)
	}
	for i := len(slots) - 1; i >= partition; i-- {
		p := slots[i]
		if p == nil {
			return nil
		}
		if p.Labels[LabelRevision] != update.Name && p.DeletionTimestamp == nil {
			return c.deletePod(ctx, set, p)
		}
		if !available(p, set.Spec.MinReadySeconds, c.now()) {
			return nil
		}
	}
	return nil
}

// hasUnhealthyBelow reports whether a condemned Pod below p (they are
// sorted highest first) is not Running and Ready: kube removes an
// unhealthy Pod out of order only when it is the lowest such one.
func hasUnhealthyBelow(condemned []*corev1.Pod, p *corev1.Pod) bool {
	i := slices.Index(condemned, p)
	for _, q := range condemned[i+1:] {
		if !runningAndReady(q) {
			return true
		}
	}
	return false
}

// createPod creates set's Pod of ordinal ord, after its claims, from the
// current revision below the partition and the update revision above it,
// as kube's newVersionedStatefulSetPod picks.
func (c *Controller) createPod(ctx context.Context, set *appsv1.StatefulSet, current, update *appsv1.ControllerRevision, ord int) error {
	rev := update
	if ru := set.Spec.UpdateStrategy.RollingUpdate; set.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType &&
		ru != nil && ru.Partition != nil && ord < startOrdinal(set)+int(*ru.Partition) {
		rev = current
	}
	from := set
	if rev.Name != update.Name {
		var err error
		if from, err = fromRevision(set, rev); err != nil {
			return err
		}
	}
	pod := newPod(set, from, rev.Name, ord)
	if err := c.ensureClaims(ctx, set, pod); err != nil {
		return err
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	_, err := c.client.CoreV1().Pods(set.Namespace).Create(wctx, pod, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		return nil // our cache is behind our own create; the watch will say
	case err != nil:
		c.event(set, corev1.EventTypeWarning, "FailedCreate", "create Pod %s in StatefulSet %s failed error: %v", pod.Name, set.Name, err)
		return fmt.Errorf("create pod %s: %w", pod.Name, err)
	}
	c.event(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

func (c *Controller) deletePod(ctx context.Context, set *appsv1.StatefulSet, p *corev1.Pod) error {
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	err := c.client.CoreV1().Pods(p.Namespace).Delete(wctx, p.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(p.UID))})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return nil // already gone, or another Pod by that name
	case err != nil:
		c.event(set, corev1.EventTypeWarning, "FailedDelete", "delete Pod %s in StatefulSet %s failed error: %v", p.Name, set.Name, err)
		return fmt.Errorf("delete pod %s: %w", p.Name, err)
	}
	c.event(set, corev1.EventTypeNormal, "SuccessfulDelete", "delete Pod %s in StatefulSet %s successful", p.Name, set.Name)
	return nil
}

// newPod is set's Pod of ordinal ord from from's template (set itself, or
// set as an older revision recorded it).
func newPod(set, from *appsv1.StatefulSet, revision string, ord int) *corev1.Pod {
	t := from.Spec.Template.DeepCopy()
	name := fmt.Sprintf("%s-%d", set.Name, ord)
	lbls := maps.Clone(t.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[LabelPodName] = name
	lbls[LabelPodIndex] = strconv.Itoa(ord)
	lbls[LabelRevision] = revision
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            name,
			Namespace:       set.Namespace,
			Labels:          lbls,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, controllerKind)},
		},
		Spec: t.Spec,
	}
	// The Pod's DNS name is NAME-N.SERVICE.NAMESPACE.svc.
	pod.Spec.Hostname = name
	pod.Spec.Subdomain = set.Spec.ServiceName
	for _, ct := range set.Spec.VolumeClaimTemplates {
		v := corev1.Volume{Name: ct.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName(ct.Name, name)}}}
		i := slices.IndexFunc(pod.Spec.Volumes, func(x corev1.Volume) bool { return x.Name == ct.Name })
		if i >= 0 {
			pod.Spec.Volumes[i] = v
		} else {
			pod.Spec.Volumes = append(pod.Spec.Volumes, v)
		}
	}
	return pod
}

// claimName is the PersistentVolumeClaim of a claim template for a Pod:
// TEMPLATE-NAME-N, as kube names it.
func claimName(template, pod string) string { return template + "-" + pod }

// ensureClaims creates the Pod's PersistentVolumeClaims that do not exist
// yet. An existing claim is kept as it is: its data is the point.
func (c *Controller) ensureClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	var errs []error
	for _, ct := range set.Spec.VolumeClaimTemplates {
		name := claimName(ct.Name, pod.Name)
		if _, err := c.claimLister.PersistentVolumeClaims(set.Namespace).Get(name); err == nil {
			continue
		}
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Namespace:   set.Namespace,
				Labels:      maps.Clone(ct.Labels),
				Annotations: maps.Clone(ct.Annotations),
			},
			Spec: *ct.Spec.DeepCopy(),
		}
		if claim.Labels == nil {
			claim.Labels = map[string]string{}
		}
		maps.Copy(claim.Labels, set.Spec.Selector.MatchLabels)
		if p := set.Spec.PersistentVolumeClaimRetentionPolicy; p != nil && p.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			// The garbage collector deletes it with the set.
			claim.OwnerReferences = []metav1.OwnerReference{ownerRef(set.Name, set.UID, controllerKind)}
		}
		wctx, cancel := worker.WriteContext(ctx)
		_, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(wctx, claim, metav1.CreateOptions{})
		cancel()
		switch {
		case err == nil:
			c.event(set, corev1.EventTypeNormal, "SuccessfulCreate", "create Claim %s Pod %s in StatefulSet %s success", name, pod.Name, set.Name)
		case !apierrors.IsAlreadyExists(err):
			c.event(set, corev1.EventTypeWarning, "FailedCreate", "create Claim %s for Pod %s in StatefulSet %s failed error: %v", name, pod.Name, set.Name, err)
			errs = append(errs, fmt.Errorf("create claim %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// releaseClaims, under persistentVolumeClaimRetentionPolicy.whenScaled
// Delete, makes a condemned Pod the owner of its claims, so that the
// garbage collector deletes them after it.
func (c *Controller) releaseClaims(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod) error {
	if p := set.Spec.PersistentVolumeClaimRetentionPolicy; p == nil || p.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return nil
	}
	podKind := corev1.SchemeGroupVersion.WithKind("Pod")
	var errs []error
	for _, ct := range set.Spec.VolumeClaimTemplates {
		claim, err := c.claimLister.PersistentVolumeClaims(set.Namespace).Get(claimName(ct.Name, pod.Name))
		if err != nil || slices.ContainsFunc(claim.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == pod.UID }) {
			continue
		}
		cp := claim.DeepCopy()
		cp.OwnerReferences = append(cp.OwnerReferences, ownerRef(pod.Name, pod.UID, podKind))
		wctx, cancel := worker.WriteContext(ctx)
		_, err = c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Update(wctx, cp, metav1.UpdateOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("claim %s: own by pod %s: %w", cp.Name, pod.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Controller) writeStatus(ctx context.Context, set *appsv1.StatefulSet, status appsv1.StatefulSetStatus) error {
	if equality.Semantic.DeepEqual(set.Status, status) {
		return nil
	}
	cp := set.DeepCopy()
	cp.Status = status
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	if _, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(wctx, cp, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// computeStatus counts set's Pods as kube's computeReplicaStatus does,
// and completes a rolling update once every Pod runs the update revision
// and is Ready.
func computeStatus(set *appsv1.StatefulSet, current, update *appsv1.ControllerRevision, pods []*corev1.Pod, now time.Time) appsv1.StatefulSetStatus {
	st := appsv1.StatefulSetStatus{
		ObservedGeneration: set.Generation,
		CurrentRevision:    current.Name,
		UpdateRevision:     update.Name,
		CollisionCount:     set.Status.CollisionCount,
		Conditions:         set.Status.Conditions,
	}
	for _, p := range pods {
		st.Replicas++
		if runningAndReady(p) {
			st.ReadyReplicas++
			if available(p, set.Spec.MinReadySeconds, now) {
				st.AvailableReplicas++
			}
		}
		if p.DeletionTimestamp != nil {
			continue
		}
		switch p.Labels[LabelRevision] {
		case current.Name:
			st.CurrentReplicas++
			if current.Name == update.Name {
				st.UpdatedReplicas++
			}
		case update.Name:
			st.UpdatedReplicas++
		}
	}
	if st.UpdatedReplicas == st.Replicas && st.ReadyReplicas == st.Replicas && st.Replicas == ptrOr(set.Spec.Replicas, 1) {
		st.CurrentRevision = update.Name
		st.CurrentReplicas = st.UpdatedReplicas
	}
	return st
}

// ordinal is p's ordinal when its name is set's NAME-N, else -1.
func ordinal(set *appsv1.StatefulSet, p *corev1.Pod) int {
	rest, ok := strings.CutPrefix(p.Name, set.Name+"-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return -1
	}
	return n
}

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

func finished(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded
}

func runningAndReady(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodRunning && readySince(p) != nil
}

// available is Ready for minReadySeconds.
func available(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	since := readySince(p)
	return since != nil && (minReadySeconds == 0 || !since.Add(time.Duration(minReadySeconds)*time.Second).After(now))
}

// readySince is when p's Ready condition became true, nil if it is not.
func readySince(p *corev1.Pod) *time.Time {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			return &cond.LastTransitionTime.Time
		}
	}
	return nil
}

func ownerRef(name string, uid types.UID, gvk schema.GroupVersionKind) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: name, UID: uid}
}
