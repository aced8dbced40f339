package horizontalpodautoscaler

import (
	"errors"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// podMetric is one pod's usage of one resource in milli-units (millicores,
// millibytes), as kube's metrics client reads it.
type podMetric struct {
	value     int64
	timestamp time.Time
	window    time.Duration
}

// tolerances bound the usage ratios (usage/target) that change nothing:
// [1-down, 1+up].
type tolerances struct{ down, up float64 }

func (t tolerances) within(ratio float64) bool { return 1-t.down <= ratio && ratio <= 1+t.up }

// calculation is what kube's replica calculator needs for one resource
// metric: the target's pods, their usage by pod name, and the tunables.
type calculation struct {
	// current is the target's spec.replicas.
	current   int32
	pods      []*corev1.Pod
	metrics   map[string]podMetric
	resource  corev1.ResourceName
	container string // "" for the whole pod
	tolerance tolerances
	now       time.Time
	// cpuInitialization and readinessDelay are kube's
	// cpuInitializationPeriod and delayOfInitialReadinessStatus.
	cpuInitialization, readinessDelay time.Duration
}

// Errors of the calculation, in kube's words.
var (
	errNoPods          = errors.New("no pods returned by selector while calculating replica count")
	errNoReadyMetrics  = errors.New("did not receive metrics for targeted pods (pods might be unready)")
	errNoMatchingPods  = errors.New("no metrics returned matched known pods")
	errNoMetricsServed = errors.New("no metrics returned from resource metrics API")
)

// utilizationReplicas is kube's GetResourceReplicas: the replicas that
// bring the average utilization (usage over the sum of requests, in
// percent) to target, the current utilization and the average raw usage.
//
// Pods without metrics count as using nothing when scaling up and their
// full request when scaling down; for cpu, pods not yet ready (or ready
// too recently for a sample to show it) count as using nothing when
// scaling up and are otherwise left out; a change of less than the
// tolerance, or one the assumptions would turn around, changes nothing.
func (c calculation) utilizationReplicas(target int32) (replicas, utilization int32, rawAverage int64, err error) {
	if len(c.pods) == 0 {
		return 0, 0, 0, errNoPods
	}
	metrics := c.ownMetrics()
	ready, unready, missing, ignored := c.groupPods(metrics)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	if len(metrics) == 0 {
		return 0, 0, 0, errNoReadyMetrics
	}
	requests, err := podRequests(c.pods, c.container, c.resource)
	if err != nil {
		return 0, 0, 0, err
	}
	ratio, utilization, rawAverage, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return 0, 0, 0, err
	}

	scaleUpWithUnready := len(unready) > 0 && ratio > 1
	if !scaleUpWithUnready && len(missing) == 0 {
		if c.tolerance.within(ratio) {
			return c.current, utilization, rawAverage, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), utilization, rawAverage, nil
	}

	switch {
	case len(missing) > 0 && ratio < 1:
		// Scaling down: a pod without metrics uses its whole request,
		// or the target where that is above 100%.
		fallback := int64(max(100, target))
		for name := range missing {
			metrics[name] = podMetric{value: requests[name] * fallback / 100}
		}
	case len(missing) > 0 && ratio > 1:
		for name := range missing {
			metrics[name] = podMetric{value: 0}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = podMetric{value: 0}
		}
	}
	newRatio, _, _, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return 0, utilization, rawAverage, err
	}
	return c.settle(ratio, newRatio, len(metrics)), utilization, rawAverage, nil
}

// averageValueReplicas is kube's GetRawResourceReplicas: the replicas
// that bring the average usage per pod to target (milli-units), and the
// current average. Missing and unready pods count as utilizationReplicas
// counts them, a missing pod using exactly target when scaling down.
func (c calculation) averageValueReplicas(target int64) (replicas int32, usage int64, err error) {
	if len(c.pods) == 0 {
		return 0, 0, errNoPods
	}
	metrics := c.ownMetrics()
	ready, unready, missing, ignored := c.groupPods(metrics)
	removeMetrics(metrics, ignored)
	removeMetrics(metrics, unready)
	if len(metrics) == 0 {
		return 0, 0, errNoReadyMetrics
	}
	ratio, usage := usageRatio(metrics, target)

	scaleUpWithUnready := len(unready) > 0 && ratio > 1
	if !scaleUpWithUnready && len(missing) == 0 {
		if c.tolerance.within(ratio) {
			return c.current, usage, nil
		}
		return int32(math.Ceil(ratio * float64(ready))), usage, nil
	}
	if len(missing) > 0 {
		fallback := int64(0)
		if ratio < 1 {
			fallback = target
		}
		for name := range missing {
			metrics[name] = podMetric{value: fallback}
		}
	}
	if scaleUpWithUnready {
		for name := range unready {
			metrics[name] = podMetric{value: 0}
		}
	}
	newRatio, _ := usageRatio(metrics, target)
	return c.settle(ratio, newRatio, len(metrics)), usage, nil
}

// settle is the end of kube's calculations once missing or unready pods
// were filled in: no change within the tolerance, nor when the filled-in
// pods reverse the direction the measured ones pointed in.
func (c calculation) settle(ratio, newRatio float64, counted int) int32 {
	if c.tolerance.within(newRatio) || (ratio < 1 && newRatio > 1) || (ratio > 1 && newRatio < 1) {
		return c.current
	}
	n := int32(math.Ceil(newRatio * float64(counted)))
	if (newRatio < 1 && n > c.current) || (newRatio > 1 && n < c.current) {
		return c.current
	}
	return n
}

// ownMetrics copies the metrics, which the calculation changes.
func (c calculation) ownMetrics() map[string]podMetric {
	out := make(map[string]podMetric, len(c.metrics))
	for k, v := range c.metrics {
		out[k] = v
	}
	return out
}

// groupPods is kube's: ready pods with metrics are counted; failed and
// terminating pods are ignored; pending pods, and for cpu pods not ready
// long enough for a sample to show it, are unready; the rest lack
// metrics.
func (c calculation) groupPods(metrics map[string]podMetric) (ready int, unready, missing, ignored map[string]bool) {
	unready, missing, ignored = map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, pod := range c.pods {
		if pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodFailed {
			ignored[pod.Name] = true
			continue
		}
		if pod.Status.Phase == corev1.PodPending {
			unready[pod.Name] = true
			continue
		}
		metric, ok := metrics[pod.Name]
		if !ok {
			missing[pod.Name] = true
			continue
		}
		if c.resource == corev1.ResourceCPU && c.cpuUnready(pod, metric) {
			unready[pod.Name] = true
			continue
		}
		ready++
	}
	return ready, unready, missing, ignored
}

// cpuUnready says whether a pod's cpu sample must not count: CPU use at
// start-up is no guide to CPU use later.
func (c calculation) cpuUnready(pod *corev1.Pod, metric podMetric) bool {
	var cond *corev1.PodCondition
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			cond = &pod.Status.Conditions[i]
			break
		}
	}
	if cond == nil || pod.Status.StartTime == nil {
		return true
	}
	if pod.Status.StartTime.Add(c.cpuInitialization).After(c.now) {
		// Still initializing: unready, or ready for less than a sample's
		// window before the sample was taken.
		return cond.Status == corev1.ConditionFalse || metric.timestamp.Before(cond.LastTransitionTime.Add(metric.window))
	}
	// Unready and never ready since starting.
	return cond.Status == corev1.ConditionFalse && pod.Status.StartTime.Add(c.readinessDelay).After(cond.LastTransitionTime.Time)
}

func removeMetrics(metrics map[string]podMetric, pods map[string]bool) {
	for name := range pods {
		delete(metrics, name)
	}
}

// podRequests sums each pod's requests of resource, in milli-units: of
// every container and restartable init container (or only container),
// or the pod-level request where the pod sets one. A container without
// a request makes utilization undefined.
func podRequests(pods []*corev1.Pod, container string, resource corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, pod := range pods {
		if container == "" && pod.Spec.Resources != nil {
			if q, ok := pod.Spec.Resources.Requests[resource]; ok {
				out[pod.Name] = q.MilliValue()
				continue
			}
		}
		containers := append([]corev1.Container{}, pod.Spec.Containers...)
		for _, ic := range pod.Spec.InitContainers {
			if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				containers = append(containers, ic)
			}
		}
		var sum int64
		for _, ct := range containers {
			if container != "" && container != ct.Name {
				continue
			}
			q, ok := ct.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, ct.Name, pod.Name)
			}
			sum += q.MilliValue()
		}
		out[pod.Name] = sum
	}
	return out, nil
}

// utilizationRatio is kube's GetResourceUtilizationRatio: usage over
// requests of the pods that have both, in whole percent, over target.
func utilizationRatio(metrics map[string]podMetric, requests map[string]int64, target int32) (ratio float64, utilization int32, rawAverage int64, err error) {
	var usage, requested int64
	n := 0
	for name, m := range metrics {
		r, ok := requests[name]
		if !ok {
			continue // a pod the lister does not show yet
		}
		usage += m.value
		requested += r
		n++
	}
	if requested == 0 {
		return 0, 0, 0, errNoMatchingPods
	}
	utilization = int32(usage * 100 / requested)
	return float64(utilization) / float64(target), utilization, usage / int64(n), nil
}

// usageRatio is kube's GetMetricUsageRatio: average usage over target.
func usageRatio(metrics map[string]podMetric, target int64) (ratio float64, average int64) {
	var total int64
	for _, m := range metrics {
		total += m.value
	}
	average = total / int64(len(metrics))
	return float64(average) / float64(target), average
}

// podMetricsOf reads what the resource metrics API answered as kube's
// metrics client does: per pod, the sum over its containers (a pod with a
// container lacking the resource has no metric), or with container set
// that container's usage (a pod without it is an error).
func podMetricsOf(items []metricsv1beta1.PodMetrics, resource corev1.ResourceName, container string) (map[string]podMetric, error) {
	out := make(map[string]podMetric, len(items))
	for _, m := range items {
		pm := podMetric{timestamp: m.Timestamp.Time, window: m.Window.Duration}
		if container != "" {
			found := false
			for _, ct := range m.Containers {
				if ct.Name != container {
					continue
				}
				found = true
				if q, ok := ct.Usage[resource]; ok {
					pm.value = q.MilliValue()
					out[m.Name] = pm
				}
				break
			}
			if !found {
				return nil, fmt.Errorf("container %s not present in metrics for pod %s/%s", container, m.Namespace, m.Name)
			}
			continue
		}
		complete := len(m.Containers) > 0
		for _, ct := range m.Containers {
			q, ok := ct.Usage[resource]
			if !ok {
				complete = false
				break
			}
			pm.value += q.MilliValue()
		}
		if complete {
			out[m.Name] = pm
		}
	}
	return out, nil
}
