package apiserver_test

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

// Events carry an etcd lease of about an hour (kube's --event-ttl), so a
// noisy controller cannot fill the store; the lease survives updates.
func TestEvents_expireWithLease(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.1", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", Namespace: "default"},
		Reason:         "Started", Message: "started", Type: corev1.EventTypeNormal,
	}
	created, err := env.Clientset.CoreV1().Events("default").Create(ctx, ev, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Count = 2
	if _, err := env.Clientset.CoreV1().Events("default").Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cli := env.Store.Client()
	resp, err := cli.Get(ctx, store.Key("", "events", "default", "web.1"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("event not stored: %v", err)
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	if lease == 0 {
		t.Fatal("event stored without a lease")
	}
	ttl, err := cli.TimeToLive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	got := time.Duration(ttl.TTL) * time.Second
	if got < 59*time.Minute || got > 62*time.Minute {
		t.Fatalf("event lease TTL %v, want about 1h", got)
	}
	// Other kinds never expire.
	cm, err := env.Clientset.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = cli.Get(ctx, store.Key("", "configmaps", "default", cm.Name))
	if err != nil || resp.Kvs[0].Lease != 0 {
		t.Fatalf("configmap has a lease: %v %+v", err, resp.Kvs)
	}
}
