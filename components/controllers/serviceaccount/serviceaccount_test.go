package serviceaccount_test

// Tests of the controller against a real etcd and API server (testenv).

import (
	"context"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"

	"kiln.dev/kiln/components/controllers/serviceaccount"
	"kiln.dev/kiln/components/testenv"
)

const waitLimit = 30 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

// TestController_defaultAccountAndRootCA: every namespace, old or new,
// gets the default ServiceAccount and kube-root-ca.crt; deleted or edited
// ones are put back; a namespace being deleted gets nothing new.
func TestController_defaultAccountAndRootCA(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "before"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := serviceaccount.New(serviceaccount.Config{Client: cs, Informers: f, RootCA: []byte(caPEM),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	f.Start(runCtx.Done())
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	})

	has := func(ns string) bool {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, serviceaccount.DefaultServiceAccount, metav1.GetOptions{})
		if err != nil {
			return false
		}
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, serviceaccount.RootCAConfigMap, metav1.GetOptions{})
		return err == nil && cm.Data[serviceaccount.RootCAKey] == caPEM
	}
	for _, ns := range []string{"default", "kube-system", "before"} {
		eventually(t, "the default account and root CA in "+ns, func() bool { return has(ns) })
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the default account and root CA in a new namespace", func() bool { return has("after") })

	old, err := cs.CoreV1().ServiceAccounts("after").Get(ctx, serviceaccount.DefaultServiceAccount, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ServiceAccounts("after").Delete(ctx, serviceaccount.DefaultServiceAccount, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new default account after a delete", func() bool {
		sa, err := cs.CoreV1().ServiceAccounts("after").Get(ctx, serviceaccount.DefaultServiceAccount, metav1.GetOptions{})
		return err == nil && sa.UID != old.UID
	})
	cm, err := cs.CoreV1().ConfigMaps("after").Get(ctx, serviceaccount.RootCAConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data = map[string]string{serviceaccount.RootCAKey: "not a CA", "extra": "x"}
	if _, err := cs.CoreV1().ConfigMaps("after").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited root CA restored", func() bool {
		cm, err := cs.CoreV1().ConfigMaps("after").Get(ctx, serviceaccount.RootCAConfigMap, metav1.GetOptions{})
		return err == nil && len(cm.Data) == 1 && cm.Data[serviceaccount.RootCAKey] == caPEM
	})
	if err := cs.CoreV1().ConfigMaps("after").Delete(ctx, serviceaccount.RootCAConfigMap, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted root CA restored", func() bool { return has("after") })

	// A terminating namespace (no namespace controller runs here, so it
	// stays terminating) gets nothing back: the controller does not try,
	// and the API server would refuse.
	if err := cs.CoreV1().Namespaces().Delete(ctx, "before", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace before terminating", func() bool {
		n, err := cs.CoreV1().Namespaces().Get(ctx, "before", metav1.GetOptions{})
		return err == nil && n.Status.Phase == corev1.NamespaceTerminating
	})
	if err := cs.CoreV1().ServiceAccounts("before").Delete(ctx, serviceaccount.DefaultServiceAccount, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Once after's account, deleted later, is back, before's delete has
	// been handled: one informer's events arrive in order, and one worker
	// takes the queue in order.
	if err := cs.CoreV1().ServiceAccounts("after").Delete(ctx, serviceaccount.DefaultServiceAccount, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "after's default account back", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("after").Get(ctx, serviceaccount.DefaultServiceAccount, metav1.GetOptions{})
		return err == nil
	})
	if _, err := cs.CoreV1().ServiceAccounts("before").Get(ctx, serviceaccount.DefaultServiceAccount, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("default account in a terminating namespace: %v, want it left deleted", err)
	}
}
