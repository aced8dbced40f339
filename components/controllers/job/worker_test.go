package job

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// newIdle returns a controller on a fake client whose informers are not
// started: tests fill the caches' stores themselves.
func newIdle(t *testing.T) (*Controller, *fake.Clientset, informers.SharedInformerFactory) {
	t.Helper()
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(Config{Client: cs, Informers: f, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.queue.ShutDown)
	return c, cs, f
}

func TestController_Run_twice(t *testing.T) {
	c, _, _ := newIdle(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if err := c.Run(ctx); err != ErrRunTwice {
		t.Fatalf("second Run = %v, want ErrRunTwice", err)
	}
}

// A watch that has not shown the Pods of the first sync must not make
// the second sync create them again.
func TestController_sync_slowWatchNoDoubleCreate(t *testing.T) {
	c, cs, f := newIdle(t)
	n := 0
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		// The fake does not name generateName objects; the API does.
		p := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		n++
		p.Name = fmt.Sprintf("%s%d", p.GenerateName, n)
		return false, nil, nil
	})
	two := int32(2)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns", UID: "u1"},
		Spec: batchv1.JobSpec{Parallelism: &two, Completions: &two,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
	if _, err := cs.BatchV1().Jobs("ns").Create(t.Context(), j, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.Batch().V1().Jobs().Informer().GetStore().Add(j); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.sync(t.Context(), "ns/j"); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := cs.CoreV1().Pods("ns").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d pods created by 3 syncs over a stale cache, want 2", len(pods.Items))
	}
	p := pods.Items[0]
	if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != "u1" || ref.Kind != "Job" ||
		p.Labels[LabelControllerUID] != "u1" || p.Labels[LabelJobName] != "j" {
		t.Fatalf("pod ownerRef %v labels %v", ref, p.Labels)
	}
}

func TestWantActive(t *testing.T) {
	i := func(v int32) *int32 { return &v }
	tests := []struct {
		name                    string
		completions, parallel   *int32
		succeeded, active, want int
	}{
		{"parallelism bounds", i(5), i(2), 0, 0, 2},
		{"remaining bounds", i(3), i(2), 2, 1, 1},
		{"done", i(3), i(2), 3, 0, 0},
		{"work queue before success", nil, i(3), 0, 0, 3},
		{"work queue after success keeps running ones", nil, i(3), 1, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := &batchv1.Job{Spec: batchv1.JobSpec{Completions: tt.completions, Parallelism: tt.parallel},
				Status: batchv1.JobStatus{Succeeded: int32(tt.succeeded)}}
			if got := wantActive(j, tt.active); got != tt.want {
				t.Fatalf("wantActive = %d, want %d", got, tt.want)
			}
		})
	}
}
