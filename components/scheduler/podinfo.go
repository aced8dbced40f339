package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
)

// podInfo is a pod with what the filters and scores read from it worked
// out once, when the pod enters the cache or is about to be scheduled.
// It is immutable.
type podInfo struct {
	pod *corev1.Pod
	// requests is what the pod takes from a node; nonZero is the same with
	// the scoring defaults for containers that request no cpu or memory.
	requests resources
	nonZero  resources
	ports    []hostPort
	// ownerUID is the pod's controller (ReplicaSet, StatefulSet, Job...),
	// for default spreading.
	ownerUID types.UID

	requiredAffinity, requiredAntiAffinity   []affinityTerm
	preferredAffinity, preferredAntiAffinity []affinityTerm
}

// hasAffinity reports whether the pod has any inter-pod (anti-)affinity
// term, so that nodes hosting it are visited when scoring others.
func (p *podInfo) hasAffinity() bool {
	return len(p.requiredAffinity) > 0 || len(p.requiredAntiAffinity) > 0 ||
		len(p.preferredAffinity) > 0 || len(p.preferredAntiAffinity) > 0
}

// hostPort is a host port a container asks for, with kube's defaults
// applied: protocol TCP, address 0.0.0.0.
type hostPort struct {
	ip       string
	protocol corev1.Protocol
	port     int32
}

const bindAllHostIP = "0.0.0.0"

// conflicts reports whether two host ports cannot both be bound: same
// protocol and port, and the same address or either one 0.0.0.0.
func (h hostPort) conflicts(o hostPort) bool {
	return h.port == o.port && h.protocol == o.protocol &&
		(h.ip == o.ip || h.ip == bindAllHostIP || o.ip == bindAllHostIP)
}

func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	add := func(c *corev1.Container) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			hp := hostPort{ip: p.HostIP, protocol: p.Protocol, port: p.HostPort}
			if hp.ip == "" {
				hp.ip = bindAllHostIP
			}
			if hp.protocol == "" {
				hp.protocol = corev1.ProtocolTCP
			}
			out = append(out, hp)
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			add(ic)
		}
	}
	return out
}

// affinityTerm is a parsed PodAffinityTerm: it matches a pod in one of
// namespaces, or in a namespace whose labels nsSelector (nil: none)
// matches, whose labels selector matches.
type affinityTerm struct {
	selector    labels.Selector
	namespaces  map[string]struct{}
	nsSelector  labels.Selector
	topologyKey string
	weight      int32
}

// matches reports whether pod, in a namespace labelled nsLabels, is one
// the term selects.
func (t *affinityTerm) matches(pod *corev1.Pod, nsLabels labels.Set) bool {
	if _, ok := t.namespaces[pod.Namespace]; !ok && (t.nsSelector == nil || !t.nsSelector.Matches(nsLabels)) {
		return false
	}
	return t.selector.Matches(labels.Set(pod.Labels))
}

// newAffinityTerm parses a term of pod, as kube's framework.AffinityTerm:
// no namespaces and no namespaceSelector mean the pod's own namespace; a
// nil namespaceSelector matches none and an empty one every namespace;
// matchLabelKeys and mismatchLabelKeys add "key in (pod's value)" and
// "key notin (pod's value)" to the selector.
func newAffinityTerm(pod *corev1.Pod, t *corev1.PodAffinityTerm, weight int32) (affinityTerm, error) {
	sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
	if err != nil {
		return affinityTerm{}, err
	}
	if t.LabelSelector != nil {
		sel, err = withLabelKeys(sel, pod.Labels, t.MatchLabelKeys, selection.In)
		if err != nil {
			return affinityTerm{}, err
		}
		sel, err = withLabelKeys(sel, pod.Labels, t.MismatchLabelKeys, selection.NotIn)
		if err != nil {
			return affinityTerm{}, err
		}
	}
	term := affinityTerm{selector: sel, topologyKey: t.TopologyKey, weight: weight}
	term.namespaces = make(map[string]struct{}, max(1, len(t.Namespaces)))
	for _, ns := range t.Namespaces {
		term.namespaces[ns] = struct{}{}
	}
	if len(t.Namespaces) == 0 && t.NamespaceSelector == nil {
		term.namespaces[pod.Namespace] = struct{}{}
	}
	if t.NamespaceSelector != nil {
		if term.nsSelector, err = metav1.LabelSelectorAsSelector(t.NamespaceSelector); err != nil {
			return affinityTerm{}, err
		}
	}
	return term, nil
}

// withLabelKeys adds to sel one requirement per key the pod has a label
// for: key op (value).
func withLabelKeys(sel labels.Selector, podLabels map[string]string, keys []string, op selection.Operator) (labels.Selector, error) {
	for _, k := range keys {
		v, ok := podLabels[k]
		if !ok {
			continue
		}
		r, err := labels.NewRequirement(k, op, []string{v})
		if err != nil {
			return nil, err
		}
		sel = sel.Add(*r)
	}
	return sel, nil
}

// newPodInfo works out what scheduling reads from pod. Terms that do not
// parse are dropped: the API server validated them, and kube's
// NewPodInfo likewise ignores parse errors.
func newPodInfo(pod *corev1.Pod) *podInfo {
	p := &podInfo{
		pod:      pod,
		requests: podRequests(pod, false),
		nonZero:  podRequests(pod, true),
		ports:    podHostPorts(pod),
	}
	if ref := metav1.GetControllerOfNoCopy(pod); ref != nil {
		p.ownerUID = ref.UID
	}
	aff := pod.Spec.Affinity
	if aff == nil {
		return p
	}
	if pa := aff.PodAffinity; pa != nil {
		for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
			if t, err := newAffinityTerm(pod, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], 1); err == nil {
				p.requiredAffinity = append(p.requiredAffinity, t)
			}
		}
		for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
			if t, err := newAffinityTerm(pod, &w.PodAffinityTerm, w.Weight); err == nil {
				p.preferredAffinity = append(p.preferredAffinity, t)
			}
		}
	}
	if pa := aff.PodAntiAffinity; pa != nil {
		for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
			if t, err := newAffinityTerm(pod, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], 1); err == nil {
				p.requiredAntiAffinity = append(p.requiredAntiAffinity, t)
			}
		}
		for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
			if t, err := newAffinityTerm(pod, &w.PodAffinityTerm, w.Weight); err == nil {
				p.preferredAntiAffinity = append(p.preferredAntiAffinity, t)
			}
		}
	}
	return p
}
