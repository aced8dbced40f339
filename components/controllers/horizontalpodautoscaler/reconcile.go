package horizontalpodautoscaler

import (
	"context"
	"errors"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Event and condition reasons, as kube's HPA controller writes them.
const (
	ReasonSuccessfulRescale            = "SuccessfulRescale"
	ReasonFailedRescale                = "FailedRescale"
	ReasonFailedGetScale               = "FailedGetScale"
	ReasonFailedUpdateScale            = "FailedUpdateScale"
	ReasonSucceededGetScale            = "SucceededGetScale"
	ReasonSucceededRescale             = "SucceededRescale"
	ReasonFailedComputeMetricsReplicas = "FailedComputeMetricsReplicas"
	ReasonFailedGetResourceMetric      = "FailedGetResourceMetric"
	ReasonFailedGetContainerMetric     = "FailedGetContainerResourceMetric"
	ReasonFailedGetPodsMetric          = "FailedGetPodsMetric"
	ReasonFailedGetObjectMetric        = "FailedGetObjectMetric"
	ReasonFailedGetExternalMetric      = "FailedGetExternalMetric"
	ReasonInvalidMetricSourceType      = "InvalidMetricSourceType"
	ReasonValidMetricFound             = "ValidMetricFound"
	ReasonScalingDisabled              = "ScalingDisabled"
	ReasonInvalidSelector              = "InvalidSelector"
	ReasonSelectorRequired             = "SelectorRequired"
	ReasonFailedUpdateStatus           = "FailedUpdateStatus"
)

// reconcile is kube's reconcileAutoscaler: read the target's scale,
// compute the replicas its metrics want, stabilize and limit them, scale,
// and write status. shared is the informer's copy and is not changed.
func (c *Controller) reconcile(ctx context.Context, key string, shared *autoscalingv2.HorizontalPodAutoscaler) (retErr error) {
	hpa := shared.DeepCopy()
	orig := hpa.Status.DeepCopy()
	ref := hpa.Spec.ScaleTargetRef
	reference := fmt.Sprintf("%s/%s/%s", ref.Kind, hpa.Namespace, ref.Name)

	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		c.event(hpa, corev1.EventTypeWarning, ReasonFailedGetScale, "%s", err)
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, ReasonFailedGetScale, "the HPA controller was unable to get the target's current scale: %v", err)
		return errors.Join(fmt.Errorf("invalid API version in scale target reference: %w", err), c.updateStatusIfNeeded(ctx, orig, hpa))
	}
	target := scaleTarget{group: gv.Group, kind: ref.Kind, namespace: hpa.Namespace, name: ref.Name}
	scale, err := c.getScale(ctx, target)
	if err != nil {
		c.event(hpa, corev1.EventTypeWarning, ReasonFailedGetScale, "%s", err)
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, ReasonFailedGetScale, "the HPA controller was unable to get the target's current scale: %v", err)
		return errors.Join(fmt.Errorf("query scale subresource for %s: %w", reference, err), c.updateStatusIfNeeded(ctx, orig, hpa))
	}
	c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, ReasonSucceededGetScale, "the HPA controller was able to get the target's current scale")
	current := scale.Spec.Replicas
	h := c.historyOf(key)
	h.recordInitial(current, c.now())

	minReplicas := int32(DefaultMinReplicas)
	if hpa.Spec.MinReplicas != nil {
		minReplicas = *hpa.Spec.MinReplicas
	}
	var (
		desired  int32
		reason   string
		statuses []autoscalingv2.MetricStatus
		rescale  = true
	)
	switch {
	case current == 0 && minReplicas != 0:
		// A target scaled to zero by hand is left there.
		rescale = false
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, ReasonScalingDisabled, "scaling is disabled since the replica count of the target is zero")
	case current > hpa.Spec.MaxReplicas:
		reason, desired = "Current number of replicas above Spec.MaxReplicas", hpa.Spec.MaxReplicas
	case current < minReplicas:
		reason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		var metricDesired int32
		var metricName string
		metricDesired, metricName, statuses, err = c.computeReplicasForMetrics(ctx, hpa, scale)
		if err != nil && metricDesired == -1 {
			c.setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false)
			c.event(hpa, corev1.EventTypeWarning, ReasonFailedComputeMetricsReplicas, "%s", err)
			return errors.Join(fmt.Errorf("compute desired replicas of %s: %w", reference, err), c.updateStatusIfNeeded(ctx, orig, hpa))
		}
		// Some metrics failed but the rest want more: scale on
		// those, and report the failure once done.
		retErr = err
		desired = max(desired, metricDesired)
		switch {
		case desired > current:
			reason = metricName + " above target"
		case desired < current:
			reason = "All metrics below target"
		}
		n := h.normalize(normalizeInput{
			current: current, desired: desired, min: minReplicas, max: hpa.Spec.MaxReplicas,
			behavior:        withDefaults(hpa.Spec.Behavior, c.cfg.DownscaleStabilizationWindow),
			downscaleWindow: c.cfg.DownscaleStabilizationWindow,
			now:             c.now(),
		})
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, n.ableReason, "%s", n.ableMessage)
		limited := corev1.ConditionFalse
		if n.limited {
			limited = corev1.ConditionTrue
		}
		c.setCondition(hpa, autoscalingv2.ScalingLimited, limited, n.limitReason, "%s", n.limitMessage)
		desired = n.replicas
		rescale = desired != current
	}

	if rescale {
		scale.Spec.Replicas = desired
		if err := c.updateScale(ctx, target, scale); err != nil {
			c.event(hpa, corev1.EventTypeWarning, ReasonFailedRescale, "New size: %d; reason: %s; error: %v", desired, reason, err)
			c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, ReasonFailedUpdateScale, "the HPA controller was unable to update the target scale: %v", err)
			c.setStatus(hpa, current, hpa.Status.DesiredReplicas, statuses, false)
			return errors.Join(fmt.Errorf("rescale %s: %w", reference, err), c.updateStatusIfNeeded(ctx, orig, hpa))
		}
		c.setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, ReasonSucceededRescale, "the HPA controller was able to update the target scale to %d", desired)
		c.event(hpa, corev1.EventTypeNormal, ReasonSuccessfulRescale, "New size: %d; reason: %s", desired, reason)
		h.recordScale(withDefaults(hpa.Spec.Behavior, c.cfg.DownscaleStabilizationWindow), current, desired, c.now())
		c.log.Info("rescaled", logKeyObject, key, logKeyTarget, reference, logKeyFrom, current, logKeyTo, desired, logKeyReason, reason)
	} else {
		desired = current
	}
	c.setStatus(hpa, current, desired, statuses, rescale)
	if err := c.updateStatusIfNeeded(ctx, orig, hpa); err != nil {
		return err
	}
	return retErr
}

// setStatus is kube's: the replicas and metrics seen, the time of a
// rescale, and the generation this evaluation read.
func (c *Controller) setStatus(hpa *autoscalingv2.HorizontalPodAutoscaler, current, desired int32, statuses []autoscalingv2.MetricStatus, rescaled bool) {
	gen := hpa.Generation
	hpa.Status = autoscalingv2.HorizontalPodAutoscalerStatus{
		ObservedGeneration: &gen,
		CurrentReplicas:    current,
		DesiredReplicas:    desired,
		LastScaleTime:      hpa.Status.LastScaleTime,
		CurrentMetrics:     statuses,
		Conditions:         hpa.Status.Conditions,
	}
	if rescaled {
		now := metav1.NewTime(c.now())
		hpa.Status.LastScaleTime = &now
	}
}

// setCondition sets one condition, moving its lastTransitionTime only
// when its status changes.
func (c *Controller) setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType,
	status corev1.ConditionStatus, reason, format string, args ...any) {
	conds := hpa.Status.Conditions
	i := 0
	for i < len(conds) && conds[i].Type != typ {
		i++
	}
	if i == len(conds) {
		conds = append(conds, autoscalingv2.HorizontalPodAutoscalerCondition{Type: typ})
	}
	if conds[i].Status != status {
		conds[i].LastTransitionTime = metav1.NewTime(c.now())
	}
	conds[i].Status, conds[i].Reason, conds[i].Message = status, reason, fmt.Sprintf(format, args...)
	hpa.Status.Conditions = conds
}

// updateStatusIfNeeded writes hpa's status unless it equals orig.
func (c *Controller) updateStatusIfNeeded(ctx context.Context, orig *autoscalingv2.HorizontalPodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	if equality.Semantic.DeepEqual(orig, &hpa.Status) {
		return nil
	}
	if _, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{}); err != nil {
		c.event(hpa, corev1.EventTypeWarning, ReasonFailedUpdateStatus, "%s", err)
		return fmt.Errorf("update status of %s/%s: %w", hpa.Namespace, hpa.Name, err)
	}
	return nil
}

// scaleTarget names a scaleTargetRef's object.
type scaleTarget struct{ group, kind, namespace, name string }

// getScale reads the target's scale subresource. The kinds are those
// kiln serves a scale subresource for.
func (c *Controller) getScale(ctx context.Context, t scaleTarget) (*autoscalingv1.Scale, error) {
	opts := metav1.GetOptions{}
	switch (schema.GroupKind{Group: t.group, Kind: t.kind}) {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return c.client.AppsV1().Deployments(t.namespace).GetScale(ctx, t.name, opts)
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return c.client.AppsV1().ReplicaSets(t.namespace).GetScale(ctx, t.name, opts)
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		return c.client.AppsV1().StatefulSets(t.namespace).GetScale(ctx, t.name, opts)
	case schema.GroupKind{Group: "", Kind: "ReplicationController"}:
		return c.client.CoreV1().ReplicationControllers(t.namespace).GetScale(ctx, t.name, opts)
	}
	// What kube's REST mapper says of a kind it does not know.
	return nil, fmt.Errorf("no matches for kind %q in group %q", t.kind, t.group)
}

// updateScale writes the target's scale subresource.
func (c *Controller) updateScale(ctx context.Context, t scaleTarget, s *autoscalingv1.Scale) error {
	opts := metav1.UpdateOptions{}
	var err error
	switch (schema.GroupKind{Group: t.group, Kind: t.kind}) {
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		_, err = c.client.AppsV1().Deployments(t.namespace).UpdateScale(ctx, t.name, s, opts)
	case schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		_, err = c.client.AppsV1().ReplicaSets(t.namespace).UpdateScale(ctx, t.name, s, opts)
	case schema.GroupKind{Group: "apps", Kind: "StatefulSet"}:
		_, err = c.client.AppsV1().StatefulSets(t.namespace).UpdateScale(ctx, t.name, s, opts)
	case schema.GroupKind{Group: "", Kind: "ReplicationController"}:
		_, err = c.client.CoreV1().ReplicationControllers(t.namespace).UpdateScale(ctx, t.name, s, opts)
	default:
		err = fmt.Errorf("no matches for kind %q in group %q", t.kind, t.group)
	}
	return err
}
