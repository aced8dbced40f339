package persistentvolume

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"kiln.dev/kiln/components/internal/localpath"
	"kiln.dev/kiln/components/testenv"
)

const ns = "default"

// eventually polls cond every 20 ms until it holds, failing after 30 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startController runs the controller, with Events, against a fresh
// API server until the test ends.
func startController(t *testing.T) kubernetes.Interface {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	f := informers.NewSharedInformerFactory(cs, 0)
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	c, err := New(Config{Client: cs, Informers: f, Events: events,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	f.Start(ctx.Done())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
		events.Shutdown()
	})
	return cs
}

func create[T any](t *testing.T, fn func(context.Context, T, metav1.CreateOptions) (T, error), obj T) T {
	t.Helper()
	out, err := fn(t.Context(), obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func claim(name, class, size string, mode corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{mode},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
	if class != "-" {
		pvc.Spec.StorageClassName = &class
	}
	return pvc
}

func staticVolume(name, class, size string, reclaim corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/" + name}},
		},
	}
}

func getClaim(t *testing.T, cs kubernetes.Interface, name string) *corev1.PersistentVolumeClaim {
	t.Helper()
	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc
}

// waitBound waits for the claim and its volume to be Bound to each other
// and returns both.
func waitBound(t *testing.T, cs kubernetes.Interface, name string) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	var pv *corev1.PersistentVolume
	eventually(t, "claim "+name+" bound", func() bool {
		pvc = getClaim(t, cs, name)
		if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
			return false
		}
		var err error
		pv, err = cs.CoreV1().PersistentVolumes().Get(t.Context(), pvc.Spec.VolumeName, metav1.GetOptions{})
		return err == nil && pv.Status.Phase == corev1.VolumeBound
	})
	if ref := pv.Spec.ClaimRef; ref == nil || ref.Name != name || ref.Namespace != ns || ref.UID != pvc.UID {
		t.Errorf("volume %s claimRef = %+v, want %s/%s uid %s", pv.Name, ref, ns, name, pvc.UID)
	}
	if pvc.Annotations[AnnBindCompleted] != "yes" {
		t.Errorf("claim annotations = %v, want %s", pvc.Annotations, AnnBindCompleted)
	}
	if q := pvc.Status.Capacity[corev1.ResourceStorage]; q.Cmp(pv.Spec.Capacity[corev1.ResourceStorage]) != 0 || len(pvc.Status.AccessModes) == 0 {
		t.Errorf("claim status = %+v, want the volume's capacity and access modes", pvc.Status)
	}
	return pvc, pv
}

// waitEvent waits for an Event with reason about the object named name.
func waitEvent(t *testing.T, cs kubernetes.Interface, namespace, name, reason string) *corev1.Event {
	t.Helper()
	var ev *corev1.Event
	eventually(t, fmt.Sprintf("event %s about %s", reason, name), func() bool {
		l, err := cs.CoreV1().Events(namespace).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for i := range l.Items {
			if e := &l.Items[i]; e.InvolvedObject.Name == name && e.Reason == reason {
				ev = e
				return true
			}
		}
		return false
	})
	return ev
}

func annotate(t *testing.T, cs kubernetes.Interface, name, key, value string) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Patch(t.Context(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// newNode is a node whose kubelet published its storage dir.
func newNode(name, dir string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels:      map[string]string{corev1.LabelHostname: name},
		Annotations: map[string]string{localpath.NodeDirAnnotation: dir}}}
}

// TestController_provisions: a claim of the default local-path class
// waits for the scheduler's selected node, then gets a hostPath volume
// in that node's storage dir, pinned to the node and bound to it; a class
// binding Immediate is not provisioned, with an event saying why.
func TestController_provisions(t *testing.T) {
	cs := startController(t)
	create(t, cs.CoreV1().Nodes().Create, newNode("n1", "/var/lib/kiln/storage"))
	pvc := create(t, cs.CoreV1().PersistentVolumeClaims(ns).Create, claim("data", "-", "3Gi", corev1.ReadWriteOnce))

	waitEvent(t, cs, ns, "data", EventReasonWaitForFirstConsumer)
	if l, _ := cs.CoreV1().PersistentVolumes().List(t.Context(), metav1.ListOptions{}); len(l.Items) != 0 {
		t.Fatalf("volumes before a node was selected: %v", l.Items)
	}
	annotate(t, cs, "data", AnnSelectedNode, "n1")
	_, pv := waitBound(t, cs, "data")

	if pv.Name != "pvc-"+string(pvc.UID) {
		t.Errorf("volume name = %s, want pvc-<claim uid>", pv.Name)
	}
	wantPath := "/var/lib/kiln/storage/pvc-" + string(pvc.UID) + "_default_data"
	if hp := pv.Spec.HostPath; hp == nil || hp.Path != wantPath || hp.Type == nil || *hp.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("hostPath = %+v, want %s DirectoryOrCreate", hp, wantPath)
	}
	if q := pv.Spec.Capacity[corev1.ResourceStorage]; q.String() != "3Gi" || pv.Spec.StorageClassName != "local-path" ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		len(pv.Spec.AccessModes) != 1 || pv.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("volume spec = %+v", pv.Spec)
	}
	na := pv.Spec.NodeAffinity
	if na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) != 1 ||
		!volumeFitsNode(pv, newNode("n1", "")) || volumeFitsNode(pv, newNode("n2", "")) {
		t.Errorf("node affinity = %+v, want kubernetes.io/hostname In [n1]", na)
	}
	if pv.Annotations[AnnProvisionedBy] != localpath.Provisioner || pv.Labels[localpath.NodeLabel] != "n1" ||
		len(pv.Finalizers) != 1 || pv.Finalizers[0] != localpath.CleanupFinalizer {
		t.Errorf("volume metadata = %+v", pv.ObjectMeta)
	}
	waitEvent(t, cs, ns, "data", EventReasonProvisioningSucceeded)

	// Immediate binding: no node to provision on.
	now := storagev1.VolumeBindingImmediate
	create(t, cs.StorageV1().StorageClasses().Create, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "now"},
		Provisioner: localpath.Provisioner, VolumeBindingMode: &now})
	create(t, cs.CoreV1().PersistentVolumeClaims(ns).Create, claim("eager", "now", "1Gi", corev1.ReadWriteOnce))
	ev := waitEvent(t, cs, ns, "eager", EventReasonProvisioningFailed)
	t.Logf("immediate class: %s", ev.Message)
	if c := getClaim(t, cs, "eager"); c.Status.Phase != corev1.ClaimPending || c.Spec.VolumeName != "" {
		t.Errorf("claim of an Immediate class = %+v, want Pending and unbound", c.Status)
	}
}

// TestController_bindsStatic: claims bind to volumes created by hand: the
// smallest that fits among those of the class and access modes, or the
// one they name.
func TestController_bindsStatic(t *testing.T) {
	cs := startController(t)
	pvs := cs.CoreV1().PersistentVolumes()
	create(t, pvs.Create, staticVolume("small", "manual", "1Gi", corev1.PersistentVolumeReclaimRetain))
	create(t, pvs.Create, staticVolume("big", "manual", "10Gi", corev1.PersistentVolumeReclaimRetain))
	create(t, pvs.Create, staticVolume("right", "manual", "5Gi", corev1.PersistentVolumeReclaimRetain))
	create(t, pvs.Create, staticVolume("other-class", "slow", "5Gi", corev1.PersistentVolumeReclaimRetain))
	create(t, pvs.Create, staticVolume("named", "manual", "20Gi", corev1.PersistentVolumeReclaimRetain))
	eventually(t, "static volumes Available", func() bool {
		l, err := pvs.List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, pv := range l.Items {
			if pv.Status.Phase != corev1.VolumeAvailable {
				return false
			}
		}
		return len(l.Items) == 5
	})

	create(t, cs.CoreV1().PersistentVolumeClaims(ns).Create, claim("fits", "manual", "2Gi", corev1.ReadWriteOnce))
	if _, pv := waitBound(t, cs, "fits"); pv.Name != "right" {
		t.Errorf("claim of 2Gi bound to %s, want right (the smallest that fits)", pv.Name)
	}
	if pvc := getClaim(t, cs, "fits"); pvc.Annotations[AnnBoundByController] != "yes" {
		t.Errorf("claim annotations = %v, want %s", pvc.Annotations, AnnBoundByController)
	}
	named := claim("by-name", "manual", "1Gi", corev1.ReadOnlyMany)
	named.Spec.VolumeName = "named"
	create(t, cs.CoreV1().PersistentVolumeClaims(ns).Create, named)
	if _, pv := waitBound(t, cs, "by-name"); pv.Name != "named" {
		t.Errorf("claim naming volume named bound to %s", pv.Name)
	}
	// No volume of that access mode: the claim waits.
	create(t, cs.CoreV1().PersistentVolumeClaims(ns).Create, claim("rwx", "manual", "1Gi", corev1.ReadWriteMany))
	waitEvent(t, cs, ns, "rwx", EventReasonProvisioningFailed)
	if c := getClaim(t, cs, "rwx"); c.Spec.VolumeName != "" {
		t.Errorf("claim for ReadWriteMany bound to %s, which has no such mode", c.Spec.VolumeName)
	}
}

// TestController_reclaims: a deleted claim's volume is Released; a
// Delete volume is then deleted (held by the cleanup finalizer until its
// node's kubelet removes it), a Retain one kept, static or provisioned.
func TestController_reclaims(t *testing.T) {
	cs := startController(t)
	ctx := t.Context()
	pvs := cs.CoreV1().PersistentVolumes()
	claims := cs.CoreV1().PersistentVolumeClaims(ns)
	create(t, cs.CoreV1().Nodes().Create, newNode("n1", "/data/storage"))
	wait := storagev1.VolumeBindingWaitForFirstConsumer
	retain := corev1.PersistentVolumeReclaimRetain
	create(t, cs.StorageV1().StorageClasses().Create, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "keep"},
		Provisioner: localpath.Provisioner, VolumeBindingMode: &wait, ReclaimPolicy: &retain})

	for _, name := range []string{"gone", "kept"} {
		class := "local-path"
		if name == "kept" {
			class = "keep"
		}
		pvc := claim(name, class, "1Gi", corev1.ReadWriteOnce)
		pvc.Annotations = map[string]string{AnnSelectedNode: "n1"}
		create(t, claims.Create, pvc)
	}
	create(t, pvs.Create, staticVolume("static", "manual", "1Gi", corev1.PersistentVolumeReclaimRetain))
	create(t, claims.Create, claim("static-claim", "manual", "1Gi", corev1.ReadWriteOnce))
	_, gone := waitBound(t, cs, "gone")
	_, kept := waitBound(t, cs, "kept")
	if kept.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("volume of class keep has reclaim policy %s, want the class's Retain", kept.Spec.PersistentVolumeReclaimPolicy)
	}
	waitBound(t, cs, "static-claim")

	for _, name := range []string{"gone", "kept", "static-claim"} {
		if err := claims.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Delete: the volume is being deleted, held by the finalizer.
	eventually(t, "volume of claim gone deleted", func() bool {
		pv, err := pvs.Get(ctx, gone.Name, metav1.GetOptions{})
		return err == nil && pv.DeletionTimestamp != nil && pv.Status.Phase == corev1.VolumeReleased
	})
	// What the kubelet does once the directory is gone.
	pv, err := pvs.Get(ctx, gone.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Finalizers = nil
	if _, err := pvs.Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "volume of claim gone removed", func() bool {
		_, err := pvs.Get(ctx, gone.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	// Retain: Released, and still there after the controller settled.
	for _, name := range []string{kept.Name, "static"} {
		eventually(t, "volume "+name+" released", func() bool {
			pv, err := pvs.Get(ctx, name, metav1.GetOptions{})
			return err == nil && pv.Status.Phase == corev1.VolumeReleased
		})
	}
	// A marker volume created after the releases is synced after them.
	create(t, pvs.Create, staticVolume("marker", "manual", "1Gi", corev1.PersistentVolumeReclaimRetain))
	eventually(t, "marker Available", func() bool {
		pv, err := pvs.Get(ctx, "marker", metav1.GetOptions{})
		return err == nil && pv.Status.Phase == corev1.VolumeAvailable
	})
	for _, name := range []string{kept.Name, "static"} {
		pv, err := pvs.Get(ctx, name, metav1.GetOptions{})
		if err != nil || pv.DeletionTimestamp != nil || pv.Status.Phase != corev1.VolumeReleased {
			t.Errorf("Retain volume %s: %v %+v, want it kept, Released", name, err, pv)
		}
	}
	// A new claim does not take a Released volume.
	create(t, claims.Create, claim("again", "manual", "1Gi", corev1.ReadWriteOnce))
	if _, pv := waitBound(t, cs, "again"); pv.Name != "marker" {
		t.Errorf("new claim bound to %s, want marker (not the Released static)", pv.Name)
	}
}
