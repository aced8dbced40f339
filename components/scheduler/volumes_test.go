package scheduler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
)

func withClaim(p *corev1.Pod, claim string) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: claim,
		VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
	return p
}

func createClaim(t *testing.T, cs kubernetes.Interface, name, class, volume string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			StorageClassName: &class,
			VolumeName:       volume,
		},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(testNS).Create(t.Context(), pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// createVolume creates a volume pinned to node by kubernetes.io/hostname.
func createVolume(t *testing.T, cs kubernetes.Interface, name, node string) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:       "manual",
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/" + name}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				expr(corev1.LabelHostname, corev1.NodeSelectorOpIn, node)}}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumes().Create(t.Context(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestScheduler_volumeBinding: a pod's claims constrain its node as
// kube's VolumeBinding does. A missing claim or an unbound one of an
// Immediate class makes the pod unschedulable; a claim bound to a volume
// pinned to a node sends the pod there; an unbound claim of a
// WaitForFirstConsumer class goes anywhere, and the scheduler writes the
// chosen node on the claim (for the provisioner) before binding the pod.
func TestScheduler_volumeBinding(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := fastClient(t, env)
	for _, n := range []string{"n1", "n2", "n3"} {
		createNode(t, cs, nodeSpec{name: n})
	}
	now := storagev1.VolumeBindingImmediate
	if _, err := cs.StorageV1().StorageClasses().Create(t.Context(), &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: "now"}, Provisioner: "example.com/x", VolumeBindingMode: &now}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, cs, Config{}, nil)

	t.Run("missing claim", func(t *testing.T) {
		createPod(t, cs, withClaim(newPod("no-claim", "", ""), "missing"))
		if msg, want := waitUnschedulable(t, cs, "no-claim"), `0/3 nodes are available: persistentvolumeclaim "missing" not found.`; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
		// The claim appearing lets it go on.
		createClaim(t, cs, "missing", "local-path", "")
		waitBound(t, cs, "no-claim")
	})

	t.Run("bound claim follows its volume's node", func(t *testing.T) {
		createVolume(t, cs, "on-n2", "n2")
		createClaim(t, cs, "pinned", "manual", "on-n2")
		for _, name := range []string{"pinned-a", "pinned-b", "pinned-c"} {
			createPod(t, cs, withClaim(newPod(name, "", ""), "pinned"))
			if node := waitBound(t, cs, name); node != "n2" {
				t.Errorf("pod %s on %s, want n2 where its volume is", name, node)
			}
		}
		createVolume(t, cs, "on-gone", "gone")
		createClaim(t, cs, "stranded", "manual", "on-gone")
		createPod(t, cs, withClaim(newPod("stranded", "", ""), "stranded"))
		if msg, want := waitUnschedulable(t, cs, "stranded"), "0/3 nodes are available: 3 node(s) had volume node affinity conflict."; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
	})

	t.Run("unbound WaitForFirstConsumer claim", func(t *testing.T) {
		createClaim(t, cs, "later", "local-path", "")
		createPod(t, cs, withClaim(newPod("first", "", ""), "later"))
		node := waitBound(t, cs, "first")
		pvc, err := cs.CoreV1().PersistentVolumeClaims(testNS).Get(t.Context(), "later", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := pvc.Annotations[annSelectedNode]; got != node {
			t.Errorf("claim's %s = %q, want %q where its pod went", annSelectedNode, got, node)
		}
	})

	t.Run("unbound Immediate claim", func(t *testing.T) {
		createClaim(t, cs, "eager", "now", "")
		createPod(t, cs, withClaim(newPod("eager", "", ""), "eager"))
		if msg, want := waitUnschedulable(t, cs, "eager"), "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."; msg != want {
			t.Errorf("message = %q, want %q", msg, want)
		}
	})
}
