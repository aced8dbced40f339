package scheduler

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
)

// Pod builders for the tables.

func on(p *corev1.Pod, node string) *corev1.Pod { p.Spec.NodeName = node; return p }

func withLabels(p *corev1.Pod, kv ...string) *corev1.Pod {
	if p.Labels == nil {
		p.Labels = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Labels[kv[i]] = kv[i+1]
	}
	return p
}

func withTolerations(p *corev1.Pod, tols ...corev1.Toleration) *corev1.Pod {
	p.Spec.Tolerations = append(p.Spec.Tolerations, tols...)
	return p
}

func withNodeSelector(p *corev1.Pod, kv ...string) *corev1.Pod {
	p.Spec.NodeSelector = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		p.Spec.NodeSelector[kv[i]] = kv[i+1]
	}
	return p
}

func affinity(p *corev1.Pod) *corev1.Affinity {
	if p.Spec.Affinity == nil {
		p.Spec.Affinity = &corev1.Affinity{}
	}
	return p.Spec.Affinity
}

// withNodeAffinity requires the terms (ORed), each a list of requirements.
func withNodeAffinity(p *corev1.Pod, terms ...corev1.NodeSelectorTerm) *corev1.Pod {
	affinity(p).NodeAffinity = &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}
	return p
}

func expr(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

func withPreferredNodeAffinity(p *corev1.Pod, weight int32, term corev1.NodeSelectorTerm) *corev1.Pod {
	a := affinity(p)
	if a.NodeAffinity == nil {
		a.NodeAffinity = &corev1.NodeAffinity{}
	}
	a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		corev1.PreferredSchedulingTerm{Weight: weight, Preference: term})
	return p
}

func podTerm(topologyKey string, kv ...string) corev1.PodAffinityTerm {
	ml := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		ml[kv[i]] = kv[i+1]
	}
	return corev1.PodAffinityTerm{TopologyKey: topologyKey, LabelSelector: &metav1.LabelSelector{MatchLabels: ml}}
}

func withPodAffinity(p *corev1.Pod, t corev1.PodAffinityTerm) *corev1.Pod {
	a := affinity(p)
	if a.PodAffinity == nil {
		a.PodAffinity = &corev1.PodAffinity{}
	}
	a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, t)
	return p
}

func withPodAntiAffinity(p *corev1.Pod, t corev1.PodAffinityTerm) *corev1.Pod {
	a := affinity(p)
	if a.PodAntiAffinity == nil {
		a.PodAntiAffinity = &corev1.PodAntiAffinity{}
	}
	a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, t)
	return p
}

func withPreferredPodAffinity(p *corev1.Pod, weight int32, t corev1.PodAffinityTerm, anti bool) *corev1.Pod {
	a := affinity(p)
	w := corev1.WeightedPodAffinityTerm{Weight: weight, PodAffinityTerm: t}
	if anti {
		if a.PodAntiAffinity == nil {
			a.PodAntiAffinity = &corev1.PodAntiAffinity{}
		}
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, w)
	} else {
		if a.PodAffinity == nil {
			a.PodAffinity = &corev1.PodAffinity{}
		}
		a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, w)
	}
	return p
}

func withSpread(p *corev1.Pod, key string, maxSkew int32, when corev1.UnsatisfiableConstraintAction, kv ...string) *corev1.Pod {
	t := podTerm(key, kv...)
	p.Spec.TopologySpreadConstraints = append(p.Spec.TopologySpreadConstraints, corev1.TopologySpreadConstraint{
		MaxSkew: maxSkew, TopologyKey: key, WhenUnsatisfiable: when, LabelSelector: t.LabelSelector})
	return p
}

func withHostPort(p *corev1.Pod, port int32, proto corev1.Protocol, ip string) *corev1.Pod {
	p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports,
		corev1.ContainerPort{ContainerPort: port, HostPort: port, Protocol: proto, HostIP: ip})
	return p
}

func withRequest(p *corev1.Pod, name corev1.ResourceName, q string) *corev1.Pod {
	if p.Spec.Containers[0].Resources.Requests == nil {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{}
	}
	p.Spec.Containers[0].Resources.Requests[name] = resource.MustParse(q)
	p.Spec.Containers[0].Resources.Limits = p.Spec.Containers[0].Resources.Requests.DeepCopy()
	return p
}

func withInit(p *corev1.Pod, cpu string, sidecar bool) *corev1.Pod {
	c := corev1.Container{Name: fmt.Sprintf("init%d", len(p.Spec.InitContainers)), Image: "registry.k8s.io/pause:3.10",
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}
	if sidecar {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
	}
	p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	return p
}

func ownedBy(p *corev1.Pod, uid types.UID) *corev1.Pod {
	yes := true
	p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: uid, Controller: &yes}}
	return p
}

func taint(key, value string, effect corev1.TaintEffect) corev1.Taint {
	return corev1.Taint{Key: key, Value: value, Effect: effect}
}

const zoneKey = corev1.LabelTopologyZone

func zone(z string) map[string]string { return map[string]string{zoneKey: z} }

// apiCase is one decision through the real API server: nodes and placed
// pods exist, the pod is created, and it must be bound to one of
// wantNodes or be reported unschedulable with wantMsg.
type apiCase struct {
	name      string
	nodes     []nodeSpec
	existing  []*corev1.Pod
	pod       *corev1.Pod
	wantNodes []string
	wantMsg   string
}

// TestScheduler_filtersThroughAPI runs every filter (and the scores whose
// pick is certain) through the API server, one scheduler serving all
// cases in turn.
func TestScheduler_filtersThroughAPI(t *testing.T) {
	tests := []apiCase{
		// NodeUnschedulable
		{name: "unschedulable node skipped", nodes: []nodeSpec{{name: "n1", unschedulable: true}, {name: "n2"}},
			pod: newPod("p", "", ""), wantNodes: []string{"n2"}},
		{name: "unschedulable node rejected", nodes: []nodeSpec{{name: "n1", unschedulable: true}},
			pod: newPod("p", "", ""), wantMsg: "0/1 nodes are available: 1 node(s) were unschedulable."},
		{name: "unschedulable node tolerated", nodes: []nodeSpec{{name: "n1", unschedulable: true}},
			pod:       withTolerations(newPod("p", "", ""), corev1.Toleration{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}),
			wantNodes: []string{"n1"}},

		// TaintToleration
		{name: "NoSchedule taint rejects", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)}}},
			pod: newPod("p", "", ""), wantMsg: "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{name: "NoExecute taint rejects", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("evict", "", corev1.TaintEffectNoExecute)}}, {name: "n2"}},
			pod: newPod("p", "", ""), wantNodes: []string{"n2"}},
		{name: "taint tolerated by Equal", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)}}},
			pod:       withTolerations(newPod("p", "", ""), corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}),
			wantNodes: []string{"n1"}},
		{name: "taint tolerated by Exists without key", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("a", "b", corev1.TaintEffectNoExecute)}}},
			pod: withTolerations(newPod("p", "", ""), corev1.Toleration{Operator: corev1.TolerationOpExists}), wantNodes: []string{"n1"}},
		{name: "toleration with another value rejects", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)}}},
			pod:     withTolerations(newPod("p", "", ""), corev1.Toleration{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoSchedule}),
			wantMsg: "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}."},
		{name: "PreferNoSchedule does not filter", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("soft", "x", corev1.TaintEffectPreferNoSchedule)}}},
			pod: newPod("p", "", ""), wantNodes: []string{"n1"}},
		{name: "taint and cpu counted per node", nodes: []nodeSpec{
			{name: "n1", taints: []corev1.Taint{taint("dedicated", "gpu", corev1.TaintEffectNoSchedule)}}, {name: "n2", cpu: "1"}, {name: "n3", cpu: "1"}},
			pod:     newPod("p", "2", ""),
			wantMsg: "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."},

		// NodeAffinity: nodeSelector and required affinity operators
		{name: "nodeSelector matches", nodes: []nodeSpec{{name: "n1"}, {name: "n2", labels: map[string]string{"disk": "ssd"}}},
			pod: withNodeSelector(newPod("p", "", ""), "disk", "ssd"), wantNodes: []string{"n2"}},
		{name: "nodeSelector matches none", nodes: []nodeSpec{{name: "n1"}, {name: "n2", labels: map[string]string{"disk": "hdd"}}},
			pod: withNodeSelector(newPod("p", "", ""), "disk", "ssd"), wantMsg: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."},
		{name: "affinity In", nodes: []nodeSpec{{name: "n1", labels: map[string]string{"tier": "c"}}, {name: "n2", labels: map[string]string{"tier": "b"}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("tier", corev1.NodeSelectorOpIn, "a", "b")), wantNodes: []string{"n2"}},
		{name: "affinity NotIn", nodes: []nodeSpec{{name: "n1", labels: map[string]string{"tier": "a"}}, {name: "n2", labels: map[string]string{"tier": "b"}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("tier", corev1.NodeSelectorOpNotIn, "a")), wantNodes: []string{"n2"}},
		{name: "affinity Exists", nodes: []nodeSpec{{name: "n1"}, {name: "n2", labels: map[string]string{"gpu": ""}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("gpu", corev1.NodeSelectorOpExists)), wantNodes: []string{"n2"}},
		{name: "affinity DoesNotExist", nodes: []nodeSpec{{name: "n1", labels: map[string]string{"gpu": ""}}, {name: "n2"}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("gpu", corev1.NodeSelectorOpDoesNotExist)), wantNodes: []string{"n2"}},
		{name: "affinity Gt", nodes: []nodeSpec{{name: "n1", labels: map[string]string{"cores": "8"}}, {name: "n2", labels: map[string]string{"cores": "64"}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("cores", corev1.NodeSelectorOpGt, "16")), wantNodes: []string{"n2"}},
		{name: "affinity Lt", nodes: []nodeSpec{{name: "n1", labels: map[string]string{"cores": "8"}}, {name: "n2", labels: map[string]string{"cores": "64"}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("cores", corev1.NodeSelectorOpLt, "16")), wantNodes: []string{"n1"}},
		{name: "affinity Gt on a non-integer label", nodes: []nodeSpec{{name: "n1", labels: map[string]string{"cores": "many"}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("cores", corev1.NodeSelectorOpGt, "1")), wantMsg: "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."},
		{name: "affinity terms are ORed", nodes: []nodeSpec{{name: "n1"}, {name: "n2", labels: map[string]string{"b": "1"}}},
			pod: withNodeAffinity(newPod("p", "", ""), expr("a", corev1.NodeSelectorOpExists), expr("b", corev1.NodeSelectorOpExists)), wantNodes: []string{"n2"}},
		{name: "affinity matchFields metadata.name", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			pod:       withNodeAffinity(newPod("p", "", ""), corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n2"}}}}),
			wantNodes: []string{"n2"}},

		// NodePorts
		{name: "host port taken on one node", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			existing: []*corev1.Pod{on(withHostPort(newPod("web", "", ""), 8080, "", ""), "n1")},
			pod:      withHostPort(newPod("p", "", ""), 8080, corev1.ProtocolTCP, ""), wantNodes: []string{"n2"}},
		{name: "host port taken everywhere", nodes: []nodeSpec{{name: "n1"}},
			existing: []*corev1.Pod{on(withHostPort(newPod("web", "", ""), 8080, "", "127.0.0.1"), "n1")},
			pod:      withHostPort(newPod("p", "", ""), 8080, "", ""),
			wantMsg:  "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."},
		{name: "host port on another protocol or address", nodes: []nodeSpec{{name: "n1"}},
			existing: []*corev1.Pod{on(withHostPort(newPod("web", "", ""), 53, corev1.ProtocolTCP, "127.0.0.1"), "n1")},
			pod:      withHostPort(withHostPort(newPod("p", "", ""), 53, corev1.ProtocolUDP, ""), 53, corev1.ProtocolTCP, "127.0.0.2"), wantNodes: []string{"n1"}},

		// NodeResourcesFit
		{name: "insufficient cpu", nodes: []nodeSpec{{name: "n1", cpu: "2"}},
			existing: []*corev1.Pod{on(newPod("big", "1500m", ""), "n1")},
			pod:      newPod("p", "1", ""), wantMsg: "0/1 nodes are available: 1 Insufficient cpu."},
		{name: "insufficient cpu and memory on one node", nodes: []nodeSpec{{name: "n1", cpu: "1", memory: "1Gi"}},
			pod: newPod("p", "2", "2Gi"), wantMsg: "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."},
		{name: "insufficient ephemeral-storage", nodes: []nodeSpec{{name: "n1", ephemeral: "1Gi"}},
			pod: withRequest(newPod("p", "", ""), corev1.ResourceEphemeralStorage, "2Gi"), wantMsg: "0/1 nodes are available: 1 Insufficient ephemeral-storage."},
		{name: "insufficient extended resource", nodes: []nodeSpec{{name: "n1"}},
			pod: withRequest(newPod("p", "", ""), "example.com/gpu", "1"), wantMsg: "0/1 nodes are available: 1 Insufficient example.com/gpu."},
		{name: "too many pods", nodes: []nodeSpec{{name: "n1", pods: "1"}, {name: "n2", cpu: "1"}},
			existing: []*corev1.Pod{on(newPod("one", "", ""), "n1")},
			pod:      newPod("p", "2", ""), wantMsg: "0/2 nodes are available: 1 Insufficient cpu, 1 Too many pods."},
		{name: "fits the emptier node", nodes: []nodeSpec{{name: "n1", cpu: "2"}, {name: "n2", cpu: "2"}},
			existing: []*corev1.Pod{on(newPod("big", "1500m", ""), "n1")},
			pod:      newPod("p", "1", ""), wantNodes: []string{"n2"}},
		{name: "init container counted as its max", nodes: []nodeSpec{{name: "n1", cpu: "2"}},
			pod: withInit(newPod("p", "1", ""), "1500m", false), wantNodes: []string{"n1"}},
		{name: "init container larger than the node", nodes: []nodeSpec{{name: "n1", cpu: "2"}},
			pod: withInit(newPod("p", "1", ""), "2500m", false), wantMsg: "0/1 nodes are available: 1 Insufficient cpu."},
		{name: "sidecar adds to the containers", nodes: []nodeSpec{{name: "n1", cpu: "2"}},
			pod: withInit(newPod("p", "1500m", ""), "1", true), wantMsg: "0/1 nodes are available: 1 Insufficient cpu."},

		// PodTopologySpread (DoNotSchedule)
		{name: "spread to the emptier zone", nodes: []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("a")}, {name: "n3", labels: zone("b")}},
			existing: []*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1")},
			pod:      withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.DoNotSchedule, "app", "web"), wantNodes: []string{"n3"}},
		{name: "spread skew exceeded", nodes: []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("b"), cpu: "1"}},
			existing: []*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1")},
			pod:      withSpread(withLabels(newPod("p", "2", ""), "app", "web"), zoneKey, 1, corev1.DoNotSchedule, "app", "web"),
			wantMsg:  "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints."},
		{name: "spread needs the topology label", nodes: []nodeSpec{{name: "n1"}, {name: "n2", labels: zone("b")}},
			pod: withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.DoNotSchedule, "app", "web"), wantNodes: []string{"n2"}},
		{name: "spread missing label everywhere", nodes: []nodeSpec{{name: "n1"}},
			pod:     withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.DoNotSchedule, "app", "web"),
			wantMsg: "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label)."},

		// InterPodAffinity
		{name: "required affinity by hostname", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			existing: []*corev1.Pod{on(withLabels(newPod("db", "", ""), "app", "db"), "n2")},
			pod:      withPodAffinity(newPod("p", "", ""), podTerm(corev1.LabelHostname, "app", "db")), wantNodes: []string{"n2"}},
		{name: "required affinity by zone", nodes: []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("b")}, {name: "n3", labels: zone("b")}},
			existing: []*corev1.Pod{on(withLabels(newPod("db", "", ""), "app", "db"), "n3")},
			pod:      withPodAffinity(newPod("p", "", ""), podTerm(zoneKey, "app", "db")), wantNodes: []string{"n2", "n3"}},
		{name: "required affinity unmatched", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			pod:     withPodAffinity(newPod("p", "", ""), podTerm(corev1.LabelHostname, "app", "db")),
			wantMsg: "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."},
		{name: "first pod of a self-affine group", nodes: []nodeSpec{{name: "n1"}},
			pod: withPodAffinity(withLabels(newPod("p", "", ""), "app", "db"), podTerm(corev1.LabelHostname, "app", "db")), wantNodes: []string{"n1"}},
		{name: "required anti-affinity", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			existing: []*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1")},
			pod:      withPodAntiAffinity(withLabels(newPod("p", "", ""), "app", "web"), podTerm(corev1.LabelHostname, "app", "web")), wantNodes: []string{"n2"}},
		{name: "required anti-affinity everywhere", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			existing: []*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1"), on(withLabels(newPod("w2", "", ""), "app", "web"), "n2")},
			pod:      withPodAntiAffinity(withLabels(newPod("p", "", ""), "app", "web"), podTerm(corev1.LabelHostname, "app", "web")),
			wantMsg:  "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."},
		{name: "existing pod's anti-affinity", nodes: []nodeSpec{{name: "n1"}},
			existing: []*corev1.Pod{on(withPodAntiAffinity(newPod("loner", "", ""), podTerm(corev1.LabelHostname, "app", "web")), "n1")},
			pod:      withLabels(newPod("p", "", ""), "app", "web"),
			wantMsg:  "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."},

		// Scores whose pick is certain.
		{name: "score: least allocated", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			existing: []*corev1.Pod{on(newPod("busy", "3", "4Gi"), "n1")},
			pod:      newPod("p", "100m", "100Mi"), wantNodes: []string{"n2"}},
		{name: "score: preferred node affinity", nodes: []nodeSpec{{name: "n1"}, {name: "n2", labels: map[string]string{"disk": "ssd"}}, {name: "n3"}},
			pod: withPreferredNodeAffinity(newPod("p", "", ""), 10, expr("disk", corev1.NodeSelectorOpIn, "ssd")), wantNodes: []string{"n2"}},
		{name: "score: PreferNoSchedule", nodes: []nodeSpec{{name: "n1", taints: []corev1.Taint{taint("soft", "x", corev1.TaintEffectPreferNoSchedule)}}, {name: "n2"}},
			pod: newPod("p", "", ""), wantNodes: []string{"n2"}},
		{name: "score: preferred pod affinity", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}, {name: "n3"}},
			existing: []*corev1.Pod{on(withLabels(newPod("db", "", ""), "app", "db"), "n3")},
			pod:      withPreferredPodAffinity(newPod("p", "", ""), 50, podTerm(corev1.LabelHostname, "app", "db"), false), wantNodes: []string{"n3"}},
		{name: "score: preferred pod anti-affinity", nodes: []nodeSpec{{name: "n1"}, {name: "n2"}},
			existing: []*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1")},
			pod:      withPreferredPodAffinity(withLabels(newPod("p", "", ""), "app", "web"), 50, podTerm(corev1.LabelHostname, "app", "web"), true), wantNodes: []string{"n2"}},
		{name: "score: owner spread across nodes", nodes: []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("a")}},
			existing: []*corev1.Pod{on(ownedBy(newPod("r1", "", ""), "rs-1"), "n1"), on(ownedBy(newPod("r2", "", ""), "rs-1"), "n1")},
			pod:      ownedBy(newPod("p", "", ""), "rs-1"), wantNodes: []string{"n2"}},
		{name: "score: owner spread across zones", nodes: []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("a")}, {name: "n3", labels: zone("b")}},
			existing: []*corev1.Pod{on(ownedBy(newPod("r1", "", ""), "rs-1"), "n1")},
			pod:      ownedBy(newPod("p", "", ""), "rs-1"), wantNodes: []string{"n3"}},
		{name: "score: ScheduleAnyway spread", nodes: []nodeSpec{{name: "n1", labels: zone("a")}, {name: "n2", labels: zone("b")}},
			existing: []*corev1.Pod{on(withLabels(newPod("w1", "", ""), "app", "web"), "n1")},
			pod:      withSpread(withLabels(newPod("p", "", ""), "app", "web"), zoneKey, 1, corev1.ScheduleAnyway, "app", "web"), wantNodes: []string{"n2"}},
	}
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	s, _ := runScheduler(t, cs, Config{}, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runAPICase(t, cs, s, tc)
		})
	}
}

func runAPICase(t *testing.T, cs kubernetes.Interface, s *Scheduler, tc apiCase) {
	t.Cleanup(func() {
		clearCluster(t, cs)
		eventually(t, "the cache to empty", func() bool { n, p := s.cache.counts(); return n == 0 && p == 0 })
	})
	for _, n := range tc.nodes {
		createNode(t, cs, n)
	}
	for _, p := range tc.existing {
		createPod(t, cs, p)
	}
	// Wait until the scheduler has seen the cluster, so that the decision
	// is made on all of it rather than on half the nodes.
	eventually(t, "the cache to fill", func() bool {
		n, p := s.cache.counts()
		return n == len(tc.nodes) && p == len(tc.existing)
	})
	start := time.Now()
	createPod(t, cs, tc.pod)
	if tc.wantMsg != "" {
		var msg string
		eventually(t, "the expected FailedScheduling message", func() bool {
			msg = waitUnschedulable(t, cs, tc.pod.Name)
			if msg != tc.wantMsg {
				t.Logf("message %q", msg)
			}
			return msg == tc.wantMsg
		})
		return
	}
	node := waitBound(t, cs, tc.pod.Name)
	if !slices.Contains(tc.wantNodes, node) {
		t.Fatalf("bound to %s, want one of %v", node, tc.wantNodes)
	}
	t.Logf("bound to %s in %v", node, time.Since(start).Round(time.Millisecond))
}
