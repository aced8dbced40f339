package reconcile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/dir"
)

// pushBenchChanges is how many changes each side of BenchmarkPushToReady
// times.
const pushBenchChanges = 10

// BenchmarkPushToReady times a one-Deployment change (a new image for 3
// replicas, on two simulated nodes) from the start of `git push` to the
// push command's exit, which waits until the rollout is healthy, 10
// times (p50). The baseline is the same change through a directory
// source in the same cluster and run: from writing the file to the watch
// event that shows the rollout complete, as the push judges it.
func BenchmarkPushToReady(b *testing.B) {
	dirRoot := b.TempDir()
	writeWeb := func(name, image string) {
		if err := os.WriteFile(filepath.Join(dirRoot, "web.yaml"), []byte(pushDeployment(name, 3, image, nil)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	writeWeb("web-dir", "example.com/web:v0")
	dsrc, err := dir.New(dir.Config{Name: "bench-dir", Path: dirRoot, Logger: pushLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	c := startPushCluster(b, pushOptions{nodes: 2, extraSources: []reconcile.SourceConfig{{Name: "bench-dir",
		Spec: reconcile.SourceSpec{Kind: "dir", Path: dirRoot, Namespace: "default", Prune: true}, Fetcher: dsrc}}})
	work := c.clone(b, c.token)
	c.commit(b, work, "v0", map[string]string{"web.yaml": pushDeployment("web", 3, "example.com/web:v0", nil)})
	if out, err := c.push(b, work, "origin", "HEAD:main"); err != nil {
		b.Fatalf("first push: %v\n%s", err, out)
	}
	pushBenchWaitReady(b, c, "web-dir", "example.com/web:v0", time.Now())

	push := make([]time.Duration, pushBenchChanges)
	base := make([]time.Duration, pushBenchChanges)
	b.ResetTimer()
	for i := range pushBenchChanges {
		image := fmt.Sprintf("example.com/web:v%d", i+1)
		c.commit(b, work, image, map[string]string{"web.yaml": pushDeployment("web", 3, image, nil)})
		start := time.Now()
		out, err := c.push(b, work, "origin", "HEAD:main")
		push[i] = time.Since(start)
		if err != nil || !strings.Contains(out, "healthy") {
			b.Fatalf("push %d: %v\n%s", i, err, out)
		}

		start = time.Now()
		writeWeb("web-dir", image)
		base[i] = pushBenchWaitReady(b, c, "web-dir", image, start)
	}
	b.StopTimer()
	slices.Sort(push)
	slices.Sort(base)
	p50, b50 := push[len(push)/2], base[len(base)/2]
	b.Logf("push: min %v p50 %v max %v; dir: min %v p50 %v max %v", push[0], p50, push[len(push)-1], base[0], b50, base[len(base)-1])
	fmt.Printf("BENCH push-to-ready %.0f ms %.2f vs dir-to-ready\n", benchMillis(p50), float64(p50)/float64(b50))
	fmt.Printf("BENCH dir-to-ready %.0f ms\n", benchMillis(b50))
}

// pushBenchWaitReady waits for the Deployment to run image on all its
// replicas, healthy by the rules a push follows, and returns the time
// since start.
func pushBenchWaitReady(b *testing.B, c *pushCluster, name, image string, start time.Time) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), pushWaitLimit)
	defer cancel()
	ready := func(d *appsv1.Deployment) bool {
		return d.Spec.Template.Spec.Containers[0].Image == image && reconcile.Assess(deploymentUnstructured(b, d), nil).Status == reconcile.HealthHealthy
	}
	for {
		d, err := c.kube.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && ready(d) {
			return time.Since(start)
		}
		rv := ""
		if err == nil {
			rv = d.ResourceVersion
		}
		w, err := c.kube.AppsV1().Deployments("default").Watch(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: rv})
		if err != nil {
			b.Fatalf("watch %s: %v", name, err)
		}
		for ev := range w.ResultChan() {
			if d, ok := ev.Object.(*appsv1.Deployment); ok && ev.Type != watch.Deleted && ready(d) {
				w.Stop()
				return time.Since(start)
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			b.Fatalf("%s not ready with %s within %v", name, image, pushWaitLimit)
		}
	}
}

// deploymentUnstructured is d as Assess reads it.
func deploymentUnstructured(b *testing.B, d *appsv1.Deployment) *unstructured.Unstructured {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		b.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("apps/v1")
	u.SetKind("Deployment")
	return u
}
