package containerd

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"kiln.dev/kiln/components/internal/imagebuild"
	"kiln.dev/kiln/components/kubelet/runtime"
)

// The benchmarks do one fixed workload per invocation and print one line
// each in the `make bench` format (DESIGN.md); run them with -benchtime 1x.

// ctrRunRuns is the number of `ctr run` starts BenchmarkCtrRun times.
const ctrRunRuns = 20

// BenchmarkCtrRun measures the baseline of pod start-up: `ctr run --rm
// --net-host` of the demo image against kiln's containerd, from exec to
// the server's "listening on" line, p50 over 20 sequential runs. The
// kubelet's pod-startup benchmark reports its p50 against this figure
// (MeasureCtrRun is the shared helper).
func BenchmarkCtrRun(b *testing.B) {
	n := startNode(b, nodeOptions{})
	cfg := CtrRun{
		Address:   n.rt.Address(),
		Namespace: n.rt.Namespace(),
		Image:     imagebuild.DemoWebRef,
		Args:      []string{"/demo-web", "serve", "-addr", "127.0.0.1:0"},
		Ready:     func(line string) bool { return strings.HasPrefix(line, "listening on") },
	}
	// One warm-up run (page cache, shim binary) outside the figure.
	if _, err := MeasureCtrRun(b.Context(), cfg, 1); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	ds, err := MeasureCtrRun(b.Context(), cfg, ctrRunRuns)
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	p50 := Percentile(ds, 50)
	b.ReportMetric(float64(p50.Microseconds())/1000, "ms-p50")
	fmt.Printf("BENCH ctr-run-baseline %d ms\n", p50.Milliseconds())

	// The same 20 started at once: what 20 pods created together are up
	// against on the same CPUs.
	par, err := MeasureCtrRunParallel(b.Context(), cfg, ctrRunRuns)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("BENCH ctr-run-parallel-p50 %d ms\n", Percentile(par, 50).Milliseconds())
	fmt.Printf("BENCH ctr-run-parallel-p99 %d ms\n", Percentile(par, 99).Milliseconds())
}

// runtimePods is the number of pods BenchmarkRuntimePodStart starts at once.
const runtimePods = 20

// BenchmarkRuntimePodStart starts 20 pods of the demo image at once
// through the Runtime interface alone (sandbox with CNI, create, start; no
// kubelet, no API) and times each from its RunPodSandbox call to its first
// HTTP answer on the pod IP: the runtime's share of pod start-up, p50 and
// p99, with the p50's ratio to `ctr run` measured in the same run: one at
// a time (the baseline the issue names) and 20 at once (the same
// contention as the pods).
func BenchmarkRuntimePodStart(b *testing.B) {
	n := startNode(b, nodeOptions{})
	ctx := b.Context()
	if err := n.rt.SetPodCIDR(ctx, n.cidr); err != nil {
		b.Fatal(err)
	}
	ctrCfg := CtrRun{
		Address:   n.rt.Address(),
		Namespace: n.rt.Namespace(),
		Image:     imagebuild.DemoWebRef,
		Args:      []string{"/demo-web", "serve", "-addr", "127.0.0.1:0"},
		Ready:     func(line string) bool { return strings.HasPrefix(line, "listening on") },
	}
	baseline, err := MeasureCtrRun(ctx, ctrCfg, 1+ctrRunRuns)
	if err != nil {
		b.Fatal(err)
	}
	base := Percentile(baseline[1:], 50)
	parallel, err := MeasureCtrRunParallel(ctx, ctrCfg, runtimePods)
	if err != nil {
		b.Fatal(err)
	}
	basePar := Percentile(parallel, 50)

	b.ResetTimer()
	took := make([]time.Duration, runtimePods)
	var g errgroup.Group
	for i := range runtimePods {
		g.Go(func() error {
			start := time.Now()
			name := fmt.Sprintf("bench-%02d", i)
			sb, err := n.rt.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "uid-" + name, Namespace: "default", Name: name, Hostname: name})
			if err != nil {
				return err
			}
			id, err := n.rt.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{
				Name:    "web",
				Image:   imagebuild.DemoWebRef,
				LogPath: filepath.Join(n.root, "pods", sb.PodUID, "web", "0.log"),
			})
			if err != nil {
				return err
			}
			if err := n.rt.StartContainer(ctx, id); err != nil {
				return err
			}
			url := "http://" + sb.IP + ":8080/healthz"
			deadline := time.Now().Add(30 * time.Second)
			for {
				if _, err := httpGet(url); err == nil {
					took[i] = time.Since(start)
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s not answering after 30s", name)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	p50, p99 := Percentile(took, 50), Percentile(took, 99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
	fmt.Printf("BENCH runtime-pod-start-p50 %d ms %.2f vs ctr-run-baseline\n", p50.Milliseconds(), float64(p50)/float64(base))
	fmt.Printf("BENCH runtime-pod-start-p50-vs-parallel %d ms %.2f vs ctr-run-parallel-p50\n", p50.Milliseconds(), float64(p50)/float64(basePar))
	fmt.Printf("BENCH runtime-pod-start-p99 %d ms\n", p99.Milliseconds())
}
