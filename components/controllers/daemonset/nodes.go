package daemonset

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"kiln.dev/kiln/components/controllers/history"
	"kiln.dev/kiln/components/internal/nodeselector"
)

// Labels every DaemonSet Pod carries.
const (
	// LabelRevisionHash is the hash of the template the Pod was made
	// from (appsv1.DefaultDaemonSetUniqueLabelKey).
	LabelRevisionHash = appsv1.DefaultDaemonSetUniqueLabelKey
	// LabelTemplateGeneration is the DaemonSet's metadata.generation when
	// the Pod was made, as kube's deprecated pod-template-generation.
	LabelTemplateGeneration = "pod-template-generation"
)

// nodeNameField is the only field matchFields may name.
const nodeNameField = "metadata.name"

// defaultTolerations are what kube's AddOrUpdateDaemonPodTolerations adds
// to every DaemonSet Pod: it must keep running (and start) on Nodes the
// node lifecycle marks not ready, unreachable, under pressure or cordoned.
var defaultTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

// hostNetworkToleration is added for hostNetwork Pods, which need no Pod
// network.
var hostNetworkToleration = corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}

// podTolerations is the template's tolerations plus the defaults it lacks.
func podTolerations(spec *corev1.PodSpec) []corev1.Toleration {
	out := slices.Clone(spec.Tolerations)
	add := defaultTolerations
	if spec.HostNetwork {
		add = append(slices.Clone(add), hostNetworkToleration)
	}
	for _, t := range add {
		if !slices.ContainsFunc(out, func(o corev1.Toleration) bool { return o.Key == t.Key && o.Effect == t.Effect }) {
			out = append(out, t)
		}
	}
	return out
}

// nodeShouldRunDaemonPod is kube's NodeShouldRunDaemonPod: shouldRun says
// a Pod should be created on node; shouldContinueRunning says a Pod
// already there may stay. They differ only for NoSchedule taints, which
// keep new Pods off but evict nothing.
func nodeShouldRunDaemonPod(node *corev1.Node, ds *appsv1.DaemonSet) (shouldRun, shouldContinueRunning bool) {
	if node.DeletionTimestamp != nil {
		return false, false
	}
	spec := &ds.Spec.Template.Spec
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return false, false
	}
	if !nodeMatches(node, spec) {
		return false, false
	}
	tolerations := podTolerations(spec)
	shouldRun, shouldContinueRunning = true, true
	for i := range node.Spec.Taints {
		taint := &node.Spec.Taints[i]
		if taint.Effect != corev1.TaintEffectNoSchedule && taint.Effect != corev1.TaintEffectNoExecute {
			continue // PreferNoSchedule is a preference
		}
		if slices.ContainsFunc(tolerations, func(t corev1.Toleration) bool { return tolerates(t, taint) }) {
			continue
		}
		shouldRun = false
		if taint.Effect == corev1.TaintEffectNoExecute {
			shouldContinueRunning = false
		}
	}
	return shouldRun, shouldContinueRunning
}

// tolerates is Toleration.ToleratesTaint for the Equal and Exists
// operators: an empty effect matches every effect, an empty key with
// Exists matches every taint.
func tolerates(t corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	}
	return false
}

// nodeMatches reports whether node satisfies the Pod's nodeSelector and
// required node affinity.
func nodeMatches(node *corev1.Node, spec *corev1.PodSpec) bool {
	if !labels.SelectorFromSet(spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return false
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil || spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	return nodeselector.Matches(spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution, node)
}

// templateHash is the controller-revision-hash of ds's current template:
// FNV-1a of its JSON and the collision count, encoded as kube's
// ComputeHash encodes it. Equal templates give equal hashes across
// restarts, since encoding/json is deterministic.
func templateHash(ds *appsv1.DaemonSet) string {
	b, _ := json.Marshal(&ds.Spec.Template) // a typed struct always marshals
	return history.Hash(b, ds.Status.CollisionCount)
}

// maxGenerateNameLength is how much of generateName kube's name generator
// keeps, leaving room for the random suffix.
const maxGenerateNameLength = 58

// newPod builds ds's Pod for node from its template. It sets both
// spec.nodeName (binds it now, with or without a scheduler) and a
// required node affinity on metadata.name (what a scheduler would bind
// by, and what modern kube sets instead of nodeName).
func newPod(ds *appsv1.DaemonSet, nodeName, hash string) *corev1.Pod {
	t := &ds.Spec.Template
	prefix := ds.Name + "-"
	if len(prefix) > maxGenerateNameLength {
		prefix = prefix[:maxGenerateNameLength]
	}
	lbls := maps.Clone(t.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[LabelRevisionHash] = hash
	lbls[LabelTemplateGeneration] = strconv.FormatInt(ds.Generation, 10)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    prefix,
			Namespace:       ds.Namespace,
			Labels:          lbls,
			Annotations:     maps.Clone(t.Annotations),
			Finalizers:      slices.Clone(t.Finalizers),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, controllerKind)},
		},
		Spec: *t.Spec.DeepCopy(),
	}
	pod.Spec.NodeName = nodeName
	pod.Spec.Tolerations = podTolerations(&pod.Spec)
	pod.Spec.Affinity = withNodeNameAffinity(pod.Spec.Affinity, nodeName)
	return pod
}

// withNodeNameAffinity is kube's ReplaceDaemonSetPodNodeNameNodeAffinity:
// every required term gets matchFields metadata.name In [nodeName] in
// place of any matchFields it had, keeping its matchExpressions; with no
// terms, one term of just that is added. aff is not changed.
func withNodeNameAffinity(aff *corev1.Affinity, nodeName string) *corev1.Affinity {
	fields := []corev1.NodeSelectorRequirement{{Key: nodeNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{nodeName}}}
	out := aff.DeepCopy()
	if out == nil {
		out = &corev1.Affinity{}
	}
	if out.NodeAffinity == nil {
		out.NodeAffinity = &corev1.NodeAffinity{}
	}
	req := out.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil || len(req.NodeSelectorTerms) == 0 {
		out.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: fields}},
		}
		return out
	}
	for i := range req.NodeSelectorTerms {
		req.NodeSelectorTerms[i].MatchFields = slices.Clone(fields)
	}
	return out
}
