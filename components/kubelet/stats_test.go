package kubelet

import (
	"testing"
	"time"
)

// TestResourceMetrics_rates: CPU is the rate between the last two
// samples and memory the last reading; a node or container with one
// sample has no metrics yet.
func TestResourceMetrics_rates(t *testing.T) {
	k := &Kubelet{cfg: Config{NodeName: "n1"}}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k.stats.node[1] = usageSample{at: t0, cpu: 5 * time.Second, memory: 100 << 20}
	k.stats.containers = map[string]*containerSamples{
		"c1": {namespace: "ns", pod: "web", container: "app", cur: usageSample{at: t0, cpu: time.Second, memory: 10 << 20}},
	}
	if m := k.resourceMetrics(); !m.Node.Timestamp.IsZero() || len(m.Pods) != 0 {
		t.Fatalf("metrics from one sample: %+v", m)
	}

	t1 := t0.Add(10 * time.Second)
	k.stats.node[0], k.stats.node[1] = k.stats.node[1], usageSample{at: t1, cpu: 25 * time.Second, memory: 200 << 20}
	c := k.stats.containers["c1"]
	c.prev, c.cur = c.cur, usageSample{at: t1, cpu: 1500 * time.Millisecond, memory: 12 << 20}
	m := k.resourceMetrics()
	if cpu, mem := m.Node.Usage.Cpu().MilliValue(), m.Node.Usage.Memory().Value(); cpu != 2000 || mem != 200<<20 || m.Node.Window.Duration != 10*time.Second {
		t.Errorf("node: %dm CPU, %d bytes over %v; want 2000m, 200Mi over 10s", cpu, mem, m.Node.Window.Duration)
	}
	if len(m.Pods) != 1 || m.Pods[0].Namespace != "ns" || m.Pods[0].Name != "web" || len(m.Pods[0].Containers) != 1 {
		t.Fatalf("pods: %+v", m.Pods)
	}
	u := m.Pods[0].Containers[0].Usage
	if cpu, mem := u.Cpu().MilliValue(), u.Memory().Value(); cpu != 50 || mem != 12<<20 {
		t.Errorf("container: %dm CPU, %d bytes; want 50m, 12Mi", cpu, mem)
	}
}
