package apiserver_test

import (
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/internal/localpath"
	"kiln.dev/kiln/components/testenv"
)

func newClaim(name string, class *string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			StorageClassName: class,
		},
	}
}

// TestBootstrap_defaultStorageClass: a new server has the local-path
// class, marked default; claims without a class get it, as kube's
// DefaultStorageClass admission gives them, and claims naming a class (or
// "" for none) keep theirs.
func TestBootstrap_defaultStorageClass(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cs := env.Clientset
	sc, err := cs.StorageV1().StorageClasses().Get(ctx, "local-path", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Provisioner != "kiln.dev/local-path" || sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" ||
		sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		sc.ReclaimPolicy == nil || *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Fatalf("local-path class = %+v", sc)
	}

	empty, other := "", "other"
	for _, tc := range []struct {
		name  string
		class *string
		want  string
	}{
		{"unset", nil, "local-path"},
		{"no class asked", &empty, ""},
		{"named", &other, "other"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim("c-"+strings.ReplaceAll(tc.name, " ", "-"), tc.class), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != tc.want {
				t.Errorf("storageClassName = %v, want %q", pvc.Spec.StorageClassName, tc.want)
			}
		})
	}

	// Without a default class, a claim stays without one.
	sc.Annotations["storageclass.kubernetes.io/is-default-class"] = "false"
	if _, err := cs.StorageV1().StorageClasses().Update(ctx, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc, err := cs.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim("no-default", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Spec.StorageClassName != nil {
		t.Errorf("with no default class, storageClassName = %q, want unset", *pvc.Spec.StorageClassName)
	}
}

// TestKubectl_Get_storage: kubectl prints StorageClasses, claims and
// volumes in kube-apiserver's columns, the default class marked.
func TestKubectl_Get_storage(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	if _, err := env.Clientset.CoreV1().PersistentVolumeClaims("default").Create(ctx, newClaim("data", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Clientset.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "static"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("2Gi")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/static"}},
			StorageClassName:       "manual",
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ws := regexp.MustCompile(`\s+`)
	for _, tc := range []struct {
		args         []string
		header, line string
	}{
		{[]string{"get", "storageclass"}, "NAME PROVISIONER RECLAIMPOLICY VOLUMEBINDINGMODE ALLOWVOLUMEEXPANSION AGE",
			"local-path (default) kiln.dev/local-path Delete WaitForFirstConsumer false "},
		{[]string{"get", "pvc", "-n", "default"}, "NAME STATUS VOLUME CAPACITY ACCESS MODES STORAGECLASS VOLUMEATTRIBUTESCLASS AGE",
			"data Pending local-path <unset> "},
		{[]string{"get", "pv"}, "NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS VOLUMEATTRIBUTESCLASS REASON AGE",
			"static 2Gi RWO Retain Pending manual <unset> "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			lines := kubectlLines(kubectlMust(t, env, tc.args...))
			if len(lines) != 2 {
				t.Fatalf("got %d lines, want header and one row:\n%s", len(lines), strings.Join(lines, "\n"))
			}
			if got := ws.ReplaceAllString(lines[0], " "); got != tc.header {
				t.Errorf("header = %q, want %q", got, tc.header)
			}
			if got := ws.ReplaceAllString(lines[1], " "); !strings.HasPrefix(got, tc.line) {
				t.Errorf("row = %q, want it to start %q", got, tc.line)
			}
		})
	}
}

// TestServer_nodeAuthorizer_volumes: a node reads the claims its pods use
// and the volumes bound to them, lists only the local-path volumes
// provisioned on it, and may only take the cleanup finalizer off those;
// another node's claims and volumes are refused.
func TestServer_nodeAuthorizer_volumes(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	admin := env.Clientset
	for _, n := range []string{"a", "b"} {
		pvc := newClaim("data-"+n, nil)
		pvc.Spec.VolumeName = "pv-" + n
		pvc, err := admin.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv-" + n, Labels: map[string]string{localpath.NodeLabel: n},
				Finalizers: []string{localpath.CleanupFinalizer}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/storage/pv-" + n}},
				ClaimRef:               &corev1.ObjectReference{Namespace: "default", Name: pvc.Name, UID: pvc.UID},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := nodePod("pod-"+n, n)
		pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}}}
		if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nodeA := nodeClient(t, env, "a")
	check := func(what string, err error, allowed bool) {
		t.Helper()
		if allowed && err != nil {
			t.Errorf("%s: %v, want allowed", what, err)
		}
		if !allowed && !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want forbidden", what, err)
		}
	}
	_, err := nodeA.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-a", metav1.GetOptions{})
	check("get own pod's claim", err, true)
	_, err = nodeA.CoreV1().PersistentVolumeClaims("default").Get(ctx, "data-b", metav1.GetOptions{})
	check("get another node's claim", err, false)
	_, err = nodeA.CoreV1().PersistentVolumeClaims("default").List(ctx, metav1.ListOptions{})
	check("list claims", err, false)
	_, err = nodeA.CoreV1().PersistentVolumes().Get(ctx, "pv-a", metav1.GetOptions{})
	check("get own claim's volume", err, true)
	_, err = nodeA.CoreV1().PersistentVolumes().Get(ctx, "pv-b", metav1.GetOptions{})
	check("get another node's volume", err, false)
	l, err := nodeA.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: localpath.NodeLabel + "=a"})
	check("list own local volumes", err, true)
	if err == nil && (len(l.Items) != 1 || l.Items[0].Name != "pv-a") {
		t.Errorf("own local volumes = %d items, want pv-a only", len(l.Items))
	}
	_, err = nodeA.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	check("list all volumes", err, false)
	_, err = nodeA.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: localpath.NodeLabel + "=b"})
	check("list another node's volumes", err, false)
	w, err := nodeA.CoreV1().PersistentVolumes().Watch(ctx, metav1.ListOptions{LabelSelector: localpath.NodeLabel + "=a"})
	check("watch own local volumes", err, true)
	if err == nil {
		w.Stop()
	}

	// The cleanup: the finalizer of its own volume, and nothing else.
	for _, n := range []string{"a", "b"} {
		if err := admin.CoreV1().PersistentVolumes().Delete(ctx, "pv-"+n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pvA, err := nodeA.CoreV1().PersistentVolumes().Get(ctx, "pv-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	relabel := pvA.DeepCopy()
	relabel.Finalizers = nil
	relabel.Labels["extra"] = "x"
	_, err = nodeA.CoreV1().PersistentVolumes().Update(ctx, relabel, metav1.UpdateOptions{})
	check("remove finalizer and relabel", err, false)
	pvB, err := admin.CoreV1().PersistentVolumes().Get(ctx, "pv-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvB.Finalizers = nil
	_, err = nodeA.CoreV1().PersistentVolumes().Update(ctx, pvB, metav1.UpdateOptions{})
	check("remove another node's finalizer", err, false)
	pvA.Finalizers = nil
	_, err = nodeA.CoreV1().PersistentVolumes().Update(ctx, pvA, metav1.UpdateOptions{})
	check("remove own finalizer", err, true)
	if _, err := admin.CoreV1().PersistentVolumes().Get(ctx, "pv-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pv-a after its last finalizer went: %v, want gone", err)
	}
}
