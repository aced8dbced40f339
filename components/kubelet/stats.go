package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Resource metrics, as metrics-server builds them from the kubelet: CPU
// is a rate over the window between the last two samples, memory the
// working set at the last. The kubelet samples its node and every running
// container every statsPeriod, as its housekeeping does; /stats/resource
// answers from the samples, so a request costs no cgroup reads.
const statsPeriod = 10 * time.Second

// ResourceMetrics is what /stats/resource answers: the node's usage and
// its pods', in the metrics.k8s.io/v1beta1 shapes the API server serves.
type ResourceMetrics struct {
	Node metricsv1beta1.NodeMetrics  `json:"node"`
	Pods []metricsv1beta1.PodMetrics `json:"pods"`
}

// usageSample is one reading of cumulative CPU time and memory.
type usageSample struct {
	at     time.Time
	cpu    time.Duration
	memory uint64
}

// containerSamples are a container's last two samples and whose it is.
type containerSamples struct {
	namespace, pod, container string
	prev, cur                 usageSample
}

type statsCache struct {
	mu         sync.Mutex
	node       [2]usageSample // previous, current
	containers map[string]*containerSamples
}

// statsLoop samples until ctx ends.
func (k *Kubelet) statsLoop(ctx context.Context) {
	t := time.NewTicker(statsPeriod)
	defer t.Stop()
	for {
		k.sampleStats(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sampleStats reads the node's usage and every running container's.
func (k *Kubelet) sampleStats(ctx context.Context) {
	now := time.Now()
	node, nodeErr := readNodeUsage()
	cs, err := k.rt.ListContainers(ctx, runtime.ContainerFilter{})
	if err != nil {
		k.log.Debug("stats: list containers", logKeyError, err)
	}
	seen := map[string]bool{}
	type reading struct {
		c  *runtime.ContainerStatus
		st *runtime.ContainerStats
	}
	var readings []reading
	for _, c := range cs {
		if c.State != runtime.ContainerRunning {
			continue
		}
		st, err := k.rt.ContainerStats(ctx, c.ID)
		if err != nil {
			continue
		}
		readings = append(readings, reading{c, st})
	}
	k.stats.mu.Lock()
	defer k.stats.mu.Unlock()
	if nodeErr == nil {
		node.at = now
		k.stats.node[0], k.stats.node[1] = k.stats.node[1], node
	}
	if k.stats.containers == nil {
		k.stats.containers = map[string]*containerSamples{}
	}
	for _, rd := range readings {
		seen[rd.c.ID] = true
		s := k.stats.containers[rd.c.ID]
		if s == nil {
			s = &containerSamples{namespace: rd.c.Labels[runtime.LabelPodNamespace], pod: rd.c.Labels[runtime.LabelPodName], container: rd.c.Name}
			k.stats.containers[rd.c.ID] = s
		}
		s.prev, s.cur = s.cur, usageSample{at: now, cpu: rd.st.CPU, memory: rd.st.MemoryWorkingSet}
	}
	for id := range k.stats.containers {
		if !seen[id] {
			delete(k.stats.containers, id)
		}
	}
}

// cpuRate is the CPU used between two samples, in cores; 0 until there
// are two.
func cpuRate(prev, cur usageSample) (resource.Quantity, time.Duration) {
	window := cur.at.Sub(prev.at)
	if prev.at.IsZero() || window <= 0 || cur.cpu < prev.cpu {
		return *resource.NewScaledQuantity(0, resource.Nano), 0
	}
	nanoCores := int64(float64(cur.cpu-prev.cpu) / window.Seconds())
	return *resource.NewScaledQuantity(nanoCores, resource.Nano), window
}

// resourceMetrics builds the answer of /stats/resource. A container has
// metrics once it has two samples.
func (k *Kubelet) resourceMetrics() ResourceMetrics {
	k.stats.mu.Lock()
	defer k.stats.mu.Unlock()
	var out ResourceMetrics
	prev, cur := k.stats.node[0], k.stats.node[1]
	cpu, window := cpuRate(prev, cur)
	out.Node.Name = k.cfg.NodeName
	if window > 0 { // else no metrics yet: a zero timestamp says so
		out.Node = metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName},
			Timestamp:  metav1.NewTime(cur.at),
			Window:     metav1.Duration{Duration: window},
			Usage: corev1.ResourceList{
				corev1.ResourceCPU:    cpu,
				corev1.ResourceMemory: *resource.NewQuantity(int64(cur.memory), resource.BinarySI),
			},
		}
	}
	pods := map[string]*metricsv1beta1.PodMetrics{}
	var order []string
	for _, s := range k.stats.containers {
		cpu, window := cpuRate(s.prev, s.cur)
		if window == 0 || s.namespace == "" || s.pod == "" {
			continue
		}
		key := s.namespace + "/" + s.pod
		pm := pods[key]
		if pm == nil {
			pm = &metricsv1beta1.PodMetrics{
				ObjectMeta: metav1.ObjectMeta{Namespace: s.namespace, Name: s.pod},
				Timestamp:  metav1.NewTime(s.cur.at),
				Window:     metav1.Duration{Duration: window},
			}
			pods[key] = pm
			order = append(order, key)
		}
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: s.container, Usage: corev1.ResourceList{
			corev1.ResourceCPU:    cpu,
			corev1.ResourceMemory: *resource.NewQuantity(int64(s.cur.memory), resource.BinarySI),
		}})
	}
	for _, key := range order {
		out.Pods = append(out.Pods, *pods[key])
	}
	return out
}

// handleResourceStats serves /stats/resource.
func (k *Kubelet) handleResourceStats(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(k.resourceMetrics())
}

// readNodeUsage reads the node's CPU time (all CPUs, busy jiffies of
// /proc/stat at USER_HZ 100; idle, iowait and time stolen by the
// hypervisor do not count) and memory in use (MemTotal less
// MemAvailable).
func readNodeUsage() (usageSample, error) {
	var s usageSample
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(f)
	if sc.Scan() {
		fields := strings.Fields(sc.Text())
		// cpu user nice system idle iowait irq softirq steal ...
		for i, v := range fields[1:] {
			if i == 3 || i == 4 || i == 7 { // idle, iowait, steal
				continue
			}
			if i > 7 { // guest time is counted in user already
				break
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			s.cpu += time.Duration(n) * 10 * time.Millisecond
		}
	}
	f.Close()
	f, err = os.Open("/proc/meminfo")
	if err != nil {
		return s, err
	}
	defer f.Close()
	var total, avail uint64
	sc = bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "MemTotal":
			total = n * 1024
		case "MemAvailable":
			avail = n * 1024
		}
	}
	if avail < total {
		s.memory = total - avail
	}
	return s, nil
}
