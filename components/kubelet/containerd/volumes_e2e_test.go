package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"

	"kiln.dev/kiln/components/controllers/persistentvolume"
	"kiln.dev/kiln/components/kubelet"
)

// TestKubelet_E2E_persistentVolume: a claim of the default local-path
// class on a real node, with the real PersistentVolume controller and the
// kubelet acting with a node's credentials. The pod waits (saying which
// claim) until the claim is bound; the volume is provisioned in the
// node's storage dir once the node is selected (what the scheduler does);
// a file a pod writes there is read by the next pod of the same claim; a
// readOnly mount refuses writes; deleting the claim deletes the volume
// and its directory.
func TestKubelet_E2E_persistentVolume(t *testing.T) {
	n := startE2ENode(t, e2eOptions{asNode: true, tweak: func(c *kubelet.Config) {
		c.BackoffBase = 300 * time.Millisecond
		c.BackoffMax = 2 * time.Second
		c.RelistPeriod = 100 * time.Millisecond
	}})
	ctx := t.Context()
	cs := n.env.Clientset
	ns := metav1.NamespaceDefault

	// The controller, as the controller manager runs it.
	f := informers.NewSharedInformerFactory(cs, 0)
	pvc, err := persistentvolume.New(persistentvolume.Config{Client: cs, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	f.Start(cctx.Done())
	done := make(chan error, 1)
	go func() { done <- pvc.Run(cctx) }()
	t.Cleanup(func() {
		stop()
		if err := waitErr(done, 30*time.Second); err != nil {
			t.Errorf("controller: %v", err)
		}
		f.Shutdown()
	})

	node, err := cs.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	storage := filepath.Join(n.root, "storage")
	if got := node.Annotations["kiln.dev/local-path-dir"]; got != storage {
		t.Fatalf("node annotation kiln.dev/local-path-dir = %q, want %q", got, storage)
	}

	claim, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	withClaim := func(p *corev1.Pod, readOnly bool) *corev1.Pod {
		p.Spec.RestartPolicy = corev1.RestartPolicyNever
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data", ReadOnly: readOnly}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		return p
	}
	hist := n.watchPods(t, ns)
	createPod := func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const text = "kept across pods\n"
	createPod(withClaim(n.newPod("writer", demoContainer("w", "write", "/data/hello", text)), false))

	// Unbound: the pod waits and says for what.
	hist.wait(t, "writer", "waiting for its claim", e2eWait, func(p *corev1.Pod) bool {
		cs := containerStatus(p, "w")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ContainerCreating" &&
			strings.Contains(cs.State.Waiting.Message, `persistentvolumeclaim "data"`)
	})
	// What the scheduler does for a WaitForFirstConsumer claim.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"volume.kubernetes.io/selected-node":%q}}}`, n.name)
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, "data", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	hist.wait(t, "writer", "Succeeded", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })

	dir := filepath.Join(storage, "pvc-"+string(claim.UID)+"_default_data")
	if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != text {
		t.Fatalf("file in the volume's directory: %q, %v; want %q", b, err, text)
	}
	n.deletePod(t, "writer")

	createPod(withClaim(n.newPod("reader", demoContainer("r", "cat", "/data/hello")), false))
	hist.wait(t, "reader", "Succeeded", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
	logs, err := cs.CoreV1().Pods(ns).GetLogs("reader", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || string(logs) != text {
		t.Errorf("reader printed %q (%v), want %q", logs, err, text)
	}

	createPod(withClaim(n.newPod("readonly", demoContainer("ro", "write", "/data/other", "no")), true))
	hist.wait(t, "readonly", "Failed", e2eWait, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if _, err := os.Stat(filepath.Join(dir, "other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a readOnly mount was written: %v", err)
	}
	n.deletePod(t, "reader")
	n.deletePod(t, "readonly")

	// The claim goes: its volume (reclaim Delete) and directory follow.
	claim, err = cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(t, "volume and directory gone", func() error {
		if _, err := cs.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("volume %s still there (%v)", claim.Spec.VolumeName, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s still there (%v)", dir, err)
		}
		return nil
	})
}

// deletePod deletes a pod and waits until the kubelet has removed it.
func (n *e2eNode) deletePod(t *testing.T, name string) {
	t.Helper()
	cs := n.env.Clientset
	if err := cs.CoreV1().Pods(metav1.NamespaceDefault).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n.eventually(t, "pod "+name+" gone", func() error {
		_, err := cs.CoreV1().Pods(metav1.NamespaceDefault).Get(t.Context(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("pod %s still there (%v)", name, err)
	})
}
