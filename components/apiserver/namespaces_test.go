package apiserver_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/testenv"
)

// A namespace being deleted takes no new objects (403), as kube's
// NamespaceLifecycle admission refuses them; one that is gone gives 404.
func TestCreate_inTerminatingNamespace_forbidden(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	ns := env.Clientset.CoreV1().Namespaces()
	if _, err := ns.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "going"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}
	if _, err := env.Clientset.CoreV1().ConfigMaps("going").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The kubernetes finalizer keeps it Terminating (no namespace
	// controller runs here).
	if err := ns.Delete(ctx, "going", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		cm.Name = "d"
		_, err := env.Clientset.CoreV1().ConfigMaps("going").Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create in a terminating namespace: got %v, want Forbidden", err)
		}
		if err == nil {
			t.Fatal("object created in a terminating namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps("never").Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("create in a missing namespace: got %v, want NotFound", err)
	}
}
