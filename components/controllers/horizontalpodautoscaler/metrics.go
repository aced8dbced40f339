package horizontalpodautoscaler

import (
	"context"
	"errors"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// metricsOf is the HPA's metrics, or kube-apiserver's default for none:
// cpu at DefaultCPUUtilization.
func metricsOf(hpa *autoscalingv2.HorizontalPodAutoscaler) []autoscalingv2.MetricSpec {
	if len(hpa.Spec.Metrics) > 0 {
		return hpa.Spec.Metrics
	}
	u := int32(DefaultCPUUtilization)
	return []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &u}}}}
}

// computeReplicasForMetrics is kube's: the largest proposal of the
// metrics that could be computed, and the status of each. It returns -1
// with the first error when every metric failed, or when some failed and
// the rest would scale down (a missing metric must not shrink the
// target); otherwise a failure is returned beside the proposal.
func (c *Controller) computeReplicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, scale *autoscalingv1.Scale) (int32, string, []autoscalingv2.MetricStatus, error) {
	sel, err := c.selector(hpa, scale.Status.Selector)
	if err != nil {
		return -1, "", nil, err
	}
	specs := metricsOf(hpa)
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	proposals := make([]proposal, len(specs))
	for i, spec := range specs {
		p := &proposals[i]
		p.replicas, p.metric, p.condition, p.err = c.computeReplicasForMetric(ctx, hpa, spec, scale.Spec.Replicas, sel, &statuses[i])
	}
	replicas, metric, cond, err := combine(proposals, scale.Spec.Replicas)
	if replicas == -1 {
		c.setCondition(hpa, cond.Type, cond.Status, cond.Reason, "%s", cond.Message)
		return -1, "", statuses, err
	}
	c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, ReasonValidMetricFound, "the HPA was able to successfully calculate a replica count from %s", metric)
	return replicas, metric, statuses, err
}

// proposal is one metric's replica count, or the error and the
// condition that report why it has none.
type proposal struct {
	replicas  int32
	metric    string
	condition autoscalingv2.HorizontalPodAutoscalerCondition
	err       error
}

// combine picks the largest proposal. When every metric failed, or some
// failed and the rest would scale below specReplicas (a metric that
// cannot be read must not shrink the target), it returns -1 with the
// first failure's condition. Otherwise a failure is returned beside the
// pick, so that it is reported once scaling is done.
func combine(proposals []proposal, specReplicas int32) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	var (
		replicas  int32
		metric    string
		invalid   int
		firstErr  error
		firstCond autoscalingv2.HorizontalPodAutoscalerCondition
	)
	for _, p := range proposals {
		if p.err != nil {
			if invalid == 0 {
				firstErr, firstCond = p.err, p.condition
			}
			invalid++
			continue
		}
		if replicas == 0 || p.replicas > replicas {
			replicas, metric = p.replicas, p.metric
		}
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %w", invalid, len(proposals), firstErr)
	}
	if invalid >= len(proposals) || (invalid > 0 && replicas < specReplicas) {
		return -1, "", firstCond, firstErr
	}
	return replicas, metric, autoscalingv2.HorizontalPodAutoscalerCondition{}, firstErr
}

// selector parses the Scale's status.selector, which selects the pods
// that count.
func (c *Controller) selector(hpa *autoscalingv2.HorizontalPodAutoscaler, s string) (labels.Selector, error) {
	if s == "" {
		c.event(hpa, corev1.EventTypeWarning, ReasonSelectorRequired, "selector is required")
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, ReasonInvalidSelector, "the HPA target's scale is missing a selector")
		return nil, errors.New("selector is required")
	}
	sel, err := labels.Parse(s)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		c.event(hpa, corev1.EventTypeWarning, ReasonInvalidSelector, "%s", msg)
		c.setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, ReasonInvalidSelector, "%s", msg)
		return nil, errors.New(msg)
	}
	return sel, nil
}

// computeReplicasForMetric proposes replicas for one metric and fills
// its status. On error it returns the ScalingActive condition to report,
// having recorded the Event kube records.
func (c *Controller) computeReplicasForMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec,
	specReplicas int32, sel labels.Selector, status *autoscalingv2.MetricStatus) (int32, string, autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	fail := func(reason string, err error) autoscalingv2.HorizontalPodAutoscalerCondition {
		c.event(hpa, corev1.EventTypeWarning, reason, "%s", err)
		return autoscalingv2.HorizontalPodAutoscalerCondition{Type: autoscalingv2.ScalingActive, Status: corev1.ConditionFalse, Reason: reason,
			Message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err)}
	}
	switch {
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		n, current, name, err := c.resourceReplicas(ctx, hpa, specReplicas, spec.Resource.Target, spec.Resource.Name, "", sel, spec.Type)
		if err != nil {
			cond := fail(ReasonFailedGetResourceMetric, err)
			return 0, "", cond, fmt.Errorf("failed to get %s resource metric value: %w", spec.Resource.Name, err)
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, Resource: &autoscalingv2.ResourceMetricStatus{Name: spec.Resource.Name, Current: *current}}
		return n, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		cr := spec.ContainerResource
		n, current, name, err := c.resourceReplicas(ctx, hpa, specReplicas, cr.Target, cr.Name, cr.Container, sel, spec.Type)
		if err != nil {
			cond := fail(ReasonFailedGetContainerMetric, err)
			return 0, "", cond, fmt.Errorf("failed to get %s container metric value: %w", cr.Name, err)
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{
			Name: cr.Name, Container: cr.Container, Current: *current}}
		return n, name, autoscalingv2.HorizontalPodAutoscalerCondition{}, nil
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		err := fmt.Errorf("unable to get metric %s: unable to fetch metrics from custom metrics API: %w", spec.Pods.Metric.Name, errNoCustomMetrics)
		return 0, "", fail(ReasonFailedGetPodsMetric, err), fmt.Errorf("failed to get pods metric value: %w", err)
	case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
		o := spec.Object
		err := fmt.Errorf("unable to get metric %s: %s on %s %s/%s: unable to fetch metrics from custom metrics API: %w",
			o.Metric.Name, o.DescribedObject.Kind, o.DescribedObject.Kind, hpa.Namespace, o.DescribedObject.Name, errNoCustomMetrics)
		return 0, "", fail(ReasonFailedGetObjectMetric, err), fmt.Errorf("failed to get object metric value: %w", err)
	case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
		err := fmt.Errorf("unable to get external metric %s/%s: unable to fetch metrics from external metrics API: %w",
			hpa.Namespace, spec.External.Metric.Name, errNoCustomMetrics)
		return 0, "", fail(ReasonFailedGetExternalMetric, err), fmt.Errorf("failed to get external metric value: %w", err)
	}
	err := fmt.Errorf("unknown metric source type %q", spec.Type)
	return 0, "", fail(ReasonInvalidMetricSourceType, err), err
}

// resourceReplicas is kube's computeStatusForResourceMetricGeneric: the
// proposal for a cpu or memory target, its current value and the metric's
// name for Events.
func (c *Controller) resourceReplicas(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, specReplicas int32, target autoscalingv2.MetricTarget,
	res corev1.ResourceName, container string, sel labels.Selector, source autoscalingv2.MetricSourceType) (int32, *autoscalingv2.MetricValueStatus, string, error) {
	if target.AverageValue == nil && target.AverageUtilization == nil {
		return 0, nil, "", errors.New("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	what := "utilization"
	if target.AverageValue != nil {
		what = "usage"
	}
	calc, err := c.calculation(ctx, hpa, specReplicas, res, container, sel)
	if err != nil {
		return 0, nil, "", fmt.Errorf("failed to get %s %s: %w", res, what, err)
	}
	if target.AverageValue != nil {
		n, usage, err := calc.averageValueReplicas(target.AverageValue.MilliValue())
		if err != nil {
			return 0, nil, "", fmt.Errorf("failed to get %s usage: %w", res, err)
		}
		return n, &autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(usage, resource.DecimalSI)}, fmt.Sprintf("%s resource", res), nil
	}
	n, utilization, raw, err := calc.utilizationReplicas(*target.AverageUtilization)
	if err != nil {
		return 0, nil, "", fmt.Errorf("failed to get %s utilization: %w", res, err)
	}
	name := fmt.Sprintf("%s resource utilization (percentage of request)", res)
	if source == autoscalingv2.ContainerResourceMetricSourceType {
		name = fmt.Sprintf("%s container resource utilization (percentage of request)", res)
	}
	return n, &autoscalingv2.MetricValueStatus{AverageUtilization: &utilization, AverageValue: resource.NewMilliQuantity(raw, resource.DecimalSI)}, name, nil
}

// calculation gathers what the replica calculator needs: the pods from
// the informer, their usage from metrics.k8s.io.
func (c *Controller) calculation(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, specReplicas int32,
	res corev1.ResourceName, container string, sel labels.Selector) (calculation, error) {
	list, err := c.metrics.MetricsV1beta1().PodMetricses(hpa.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return calculation{}, fmt.Errorf("unable to get metrics for resource %s: unable to fetch metrics from resource metrics API: %w", res, err)
	}
	if len(list.Items) == 0 {
		return calculation{}, fmt.Errorf("unable to get metrics for resource %s: %w", res, errNoMetricsServed)
	}
	metrics, err := podMetricsOf(list.Items, res, container)
	if err != nil {
		return calculation{}, fmt.Errorf("unable to get metrics for resource %s: failed to get container metrics: %w", res, err)
	}
	pods, err := c.podLister.Pods(hpa.Namespace).List(sel)
	if err != nil {
		return calculation{}, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	return calculation{
		current: specReplicas, pods: pods, metrics: metrics, resource: res, container: container,
		tolerance: c.tolerances(hpa), now: c.now(),
		cpuInitialization: c.cfg.CPUInitializationPeriod, readinessDelay: c.cfg.InitialReadinessDelay,
	}, nil
}

// tolerances are Config.Tolerance, or the behavior's own per direction
// (kube's HPAConfigurableTolerance).
func (c *Controller) tolerances(hpa *autoscalingv2.HorizontalPodAutoscaler) tolerances {
	t := tolerances{down: c.cfg.Tolerance, up: c.cfg.Tolerance}
	if b := hpa.Spec.Behavior; b != nil {
		if b.ScaleDown != nil && b.ScaleDown.Tolerance != nil {
			t.down = b.ScaleDown.Tolerance.AsApproximateFloat64()
		}
		if b.ScaleUp != nil && b.ScaleUp.Tolerance != nil {
			t.up = b.ScaleUp.Tolerance.AsApproximateFloat64()
		}
	}
	return t
}
