package kubelet_test

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/components/testenv"
)

// The benchmarks do one fixed workload per invocation and print lines in
// the `make bench` format (DESIGN.md); run them with -benchtime 1x. They
// use the simulated runtime, so they measure the kubelet and the API, not
// containers: the containerd runtime's pod-startup benchmark measures
// real containers.

const benchPods = 20

// BenchmarkPodStartupSimulated creates 20 pods at once on one simulated
// node and times each from its create call to its Ready status seen by a
// watch (p50, p99). The baseline is the same workload against the test
// stand-in (testenv.StandInKubelet), which marks a pod Running and Ready
// with one status write as soon as it sees it: the floor the API sets.
func BenchmarkPodStartupSimulated(b *testing.B) {
	kubelet := startupLatencies(b, func(c *cluster) string { return simNode(b, c, "bench-node").name })
	standIn := startupLatencies(b, func(c *cluster) string {
		testenv.StandInKubelet(b, c.Env, testenv.StandInOptions{Node: "standin"})
		return "standin"
	})
	kp50, kp99 := percentile(kubelet, 50), percentile(kubelet, 99)
	sp50, sp99 := percentile(standIn, 50), percentile(standIn, 99)
	fmt.Printf("BENCH pod-startup-sim-p50 %.1f ms %.2f vs standin-p50\n", ms(kp50), ratio(kp50, sp50))
	fmt.Printf("BENCH pod-startup-sim-p99 %.1f ms %.2f vs standin-p99\n", ms(kp99), ratio(kp99, sp99))
}

// startupLatencies runs the workload on a fresh cluster whose node is
// made by setup.
func startupLatencies(b *testing.B, setup func(*cluster) string) []time.Duration {
	b.Helper()
	c := startCluster(b)
	node := setup(c)
	ctx := b.Context()
	pods := c.Clientset.CoreV1().Pods(ns)

	// Warm the path (connections, caches) with one pod.
	warm := c.createPod(b, newPod("warm", node, nil))
	c.waitPod(b, ns, warm.Name, "Ready", podReady)

	w, err := pods.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	created := make([]time.Time, benchPods)
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range benchPods {
		wg.Go(func() {
			created[i] = time.Now()
			if _, err := pods.Create(ctx, newPod(fmt.Sprintf("p%02d", i), node, nil), metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		})
	}
	ready := map[string]time.Time{}
	timeout := time.After(waitLimit)
	for len(ready) < benchPods {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				b.Fatal("watch ended")
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Deleted || p.Name == warm.Name {
				continue
			}
			if _, seen := ready[p.Name]; !seen && podReady(p) {
				ready[p.Name] = time.Now()
			}
		case <-timeout:
			b.Fatalf("%d of %d pods Ready after %v", len(ready), benchPods, waitLimit)
		}
	}
	b.StopTimer()
	wg.Wait()
	var lat []time.Duration
	for i := range benchPods {
		lat = append(lat, ready[fmt.Sprintf("p%02d", i)].Sub(created[i]))
	}
	return lat
}

// BenchmarkHollowNodes runs 100 simulated kubelets in this process, each
// with 5 pods, and reports the time until all 500 pods are Ready and the
// Go heap per hollow node: what a scale test of the control plane pays
// per simulated node.
func BenchmarkHollowNodes(b *testing.B) {
	const nodes, perNode = 100, 5
	c := startCluster(b)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	startHollow(b, c, nodes)
	registered := time.Since(start)

	b.ResetTimer()
	start = time.Now()
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			for j := range perNode {
				p := newPod(fmt.Sprintf("h%03d-%d", i, j), fmt.Sprintf("hollow-%03d", i), nil)
				if _, err := c.Clientset.CoreV1().Pods(ns).Create(b.Context(), p, metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	eventually(b, "all pods Ready", func() bool {
		l, err := c.Clientset.CoreV1().Pods(ns).List(b.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		n := 0
		for i := range l.Items {
			if podReady(&l.Items[i]) {
				n++
			}
		}
		return n == nodes*perNode
	})
	allReady := time.Since(start)
	b.StopTimer()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-min(before.HeapAlloc, after.HeapAlloc)) / nodes / (1 << 20)
	fmt.Printf("BENCH hollow-nodes-register-100 %.0f ms\n", ms(registered))
	fmt.Printf("BENCH hollow-nodes-100x5-ready %.0f ms\n", ms(allReady))
	fmt.Printf("BENCH hollow-node-heap %.2f MiB/node\n", heap)
}

// startHollow starts n simulated kubelets, hollow-000 to hollow-<n-1>,
// and waits for all of them to be Ready.
func startHollow(tb testing.TB, c *cluster, n int) {
	tb.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// The node IPAM controller's part: a /24 each.
			rt := simulated.New(simulated.Config{})
			if err := rt.SetPodCIDR(tb.Context(), fmt.Sprintf("10.42.%d.0/24", i)); err != nil {
				tb.Error(err)
				return
			}
			startKubelet(tb, c, fmt.Sprintf("hollow-%03d", i), rt, "", hollowConfig(tb))
		})
	}
	wg.Wait()
	eventually(tb, "all hollow nodes Ready", func() bool {
		l, err := c.Clientset.CoreV1().Nodes().List(tb.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		ready := 0
		for i := range l.Items {
			if nodeReady(&l.Items[i]) {
				ready++
			}
		}
		return ready == n
	})
}

// hollowConfig paces hollow nodes as real ones (10 s status and lease,
// 1 s relist), so that a hundred of them load the API as a hundred
// kubelets would, and keeps their logs to warnings.
func hollowConfig(tb testing.TB) func(*kubelet.Config) {
	log := slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	return func(cfg *kubelet.Config) {
		cfg.LeaseDuration = kubelet.DefaultLeaseDuration
		cfg.StatusPeriod = kubelet.DefaultStatusPeriod
		cfg.RelistPeriod = kubelet.DefaultRelistPeriod
		cfg.Logger = log
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}
