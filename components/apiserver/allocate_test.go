package apiserver_test

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
)

// TestService_concurrentCreates_serverPicksNeverFail creates Services from
// 16 goroutines, each leaving the ClusterIP (and, for NodePort ones, the
// node ports) to the server. A create that loses an allocation race must
// pick again, never answer "already allocated" for an address the server
// chose. The dense case fills 80% of a /24 and of 250 ports, where races
// are frequent.
func TestService_concurrentCreates_serverPicksNeverFail(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts testenv.Options
		// n Services, every nodePortEvery-th one a NodePort Service with
		// two ports.
		n, nodePortEvery int
	}{
		{name: "1000 in the default ranges", n: 1000, nodePortEvery: 2},
		{name: "dense ranges", opts: testenv.Options{ServiceCIDR: "10.96.0.0/24", NodePortRange: "30000-30249", ClusterDNS: "10.96.0.10"}, n: 200, nodePortEvery: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := testenv.Start(t, tc.opts)
			svcs := env.Clientset.CoreV1().Services("default")
			created := make([]*corev1.Service, tc.n)
			parallel(t, tc.n, func(i int) error {
				svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%04d", i)},
					Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
				if i%tc.nodePortEvery == 0 {
					svc.Spec.Type = corev1.ServiceTypeNodePort
					svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: "https", Port: 443})
				}
				out, err := svcs.Create(t.Context(), svc, metav1.CreateOptions{})
				created[i] = out
				return err
			})
			if t.Failed() {
				return
			}
			wantDistinctAllocations(t, env, created)
		})
	}
}

// TestService_concurrentUpdates_serverPicksNeverFail turns ClusterIP
// Services into NodePort ones from 16 goroutines, each update carrying
// the resourceVersion it read: the node ports the server picks may race,
// and a lost race must pick again rather than answer 409 or 422.
func TestService_concurrentUpdates_serverPicksNeverFail(t *testing.T) {
	env := testenv.Start(t, testenv.Options{NodePortRange: "30000-30099"})
	svcs := env.Clientset.CoreV1().Services("default")
	const n = 80
	created := make([]*corev1.Service, n)
	for i := range created {
		out, err := svcs.Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("svc-%02d", i)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created[i] = out
	}
	updated := make([]*corev1.Service, n)
	parallel(t, n, func(i int) error {
		svc := created[i].DeepCopy()
		svc.Spec.Type = corev1.ServiceTypeNodePort
		out, err := svcs.Update(t.Context(), svc, metav1.UpdateOptions{})
		updated[i] = out
		return err
	})
	if t.Failed() {
		return
	}
	wantDistinctAllocations(t, env, updated)
}

// parallel runs fn for 0..n-1 from 16 goroutines and reports each error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					t.Errorf("item %d: %v", i, err)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// wantDistinctAllocations checks that no two Services share a ClusterIP or
// a node port, and that the allocation keys in etcd held by the test's
// Services are exactly theirs.
func wantDistinctAllocations(t *testing.T, env *testenv.Env, svcs []*corev1.Service) {
	t.Helper()
	ips, ports := map[string]string{}, map[int32]string{}
	for _, svc := range svcs {
		if prev, dup := ips[svc.Spec.ClusterIP]; dup {
			t.Errorf("%s and %s share ClusterIP %s", prev, svc.Name, svc.Spec.ClusterIP)
		}
		ips[svc.Spec.ClusterIP] = svc.Name
		for _, p := range svc.Spec.Ports {
			if svc.Spec.Type != corev1.ServiceTypeNodePort {
				continue
			}
			if p.NodePort == 0 {
				t.Errorf("%s port %d has no node port", svc.Name, p.Port)
			}
			if prev, dup := ports[p.NodePort]; dup {
				t.Errorf("%s and %s share node port %d", prev, svc.Name, p.NodePort)
			}
			ports[p.NodePort] = svc.Name
		}
	}
	for _, w := range []struct {
		prefix string
		want   int
	}{{"/kiln/allocations/serviceips/", len(ips)}, {"/kiln/allocations/nodeports/", len(ports)}} {
		resp, err := env.Store.Client().Get(t.Context(), w.prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for _, kv := range resp.Kvs {
			if strings.HasPrefix(string(kv.Value), "default/svc-") {
				got++
			}
		}
		if got != w.want {
			t.Errorf("%d allocation keys under %s held by the test's Services, want %d", got, w.prefix, w.want)
		}
	}
}

// TestService_clusterDNS_reservedForKubeDNS: with ClusterDNS set, the
// server creates kube-system/kube-dns at that address, as k3s does; no
// Service can take the address, and the server never picks it, even once
// kube-dns is gone.
func TestService_clusterDNS_reservedForKubeDNS(t *testing.T) {
	// A /29 leaves .2 to .6 after the network, kubernetes and broadcast
	// addresses; .3 is DNS, so four remain for Services.
	env := testenv.Start(t, testenv.Options{ServiceCIDR: "10.96.0.0/29", ClusterDNS: "10.96.0.3"})
	cs := env.Clientset
	dns, err := cs.CoreV1().Services("kube-system").Get(t.Context(), "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dns.Spec.ClusterIP != "10.96.0.3" || dns.Spec.Type != corev1.ServiceTypeClusterIP || dns.Spec.Selector != nil {
		t.Errorf("kube-dns: clusterIP %s type %s selector %v, want 10.96.0.3, ClusterIP, none", dns.Spec.ClusterIP, dns.Spec.Type, dns.Spec.Selector)
	}
	if dns.Labels["k8s-app"] != "kube-dns" || dns.Labels["kubernetes.io/name"] != "CoreDNS" {
		t.Errorf("kube-dns labels %v", dns.Labels)
	}
	var ports []string
	for _, p := range dns.Spec.Ports {
		ports = append(ports, fmt.Sprintf("%s %d/%s->%s", p.Name, p.Port, p.Protocol, p.TargetPort.String()))
	}
	if got, want := strings.Join(ports, ", "), "dns 53/UDP->53, dns-tcp 53/TCP->53, metrics 9153/TCP->9153"; got != want {
		t.Errorf("kube-dns ports %q, want %q", got, want)
	}

	_, err = cs.CoreV1().Services("default").Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "squatter"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.96.0.3", Ports: []corev1.ServicePort{{Port: 53}}}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Errorf("create at the DNS address: %v, want Invalid: already allocated", err)
	}

	if err := cs.CoreV1().Services("kube-system").Delete(t.Context(), "kube-dns", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fill(t, cs, 4)

	// A restart over the same data creates kube-dns again.
	env.Stop()
	env = testenv.Start(t, testenv.Options{DataDir: env.DataDir, ServiceCIDR: "10.96.0.0/29", ClusterDNS: "10.96.0.3"})
	if got, err := env.Clientset.CoreV1().Services("kube-system").Get(t.Context(), "kube-dns", metav1.GetOptions{}); err != nil || got.Spec.ClusterIP != "10.96.0.3" {
		t.Errorf("kube-dns after restart: %v, %v", got, err)
	}
}

// TestService_clusterDNS_heldByAnotherService: a cluster that ran without
// ClusterDNS may have given that address to a Service. Setting it later
// still starts (a warning, not a failure), leaves that Service alone and
// creates no kube-dns.
func TestService_clusterDNS_heldByAnotherService(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	if _, err := env.Clientset.CoreV1().Services("default").Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "early"},
		Spec: corev1.ServiceSpec{ClusterIP: "10.43.0.10", Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.Stop()
	env = testenv.Start(t, testenv.Options{DataDir: env.DataDir, ClusterDNS: "10.43.0.10"})
	if _, err := env.Clientset.CoreV1().Services("kube-system").Get(t.Context(), "kube-dns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kube-dns: %v, want NotFound", err)
	}
	if got, err := env.Clientset.CoreV1().Services("default").Get(t.Context(), "early", metav1.GetOptions{}); err != nil || got.Spec.ClusterIP != "10.43.0.10" {
		t.Errorf("early: %v, %v; want it kept at 10.43.0.10", got, err)
	}
}

// fill creates Services until the range is full and checks that exactly
// want of them fit, none at the DNS address.
func fill(t *testing.T, cs kubernetes.Interface, want int) {
	t.Helper()
	for i := range want + 1 {
		svc, err := cs.CoreV1().Services("default").Create(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fill-%d", i)},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		if i == want {
			if err == nil || !strings.Contains(err.Error(), "range 10.96.0.0/29 is full") {
				t.Errorf("create %d in a full range: %v, want range is full", i, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if ip := netip.MustParseAddr(svc.Spec.ClusterIP); ip == netip.MustParseAddr("10.96.0.3") {
			t.Errorf("%s got the DNS address", svc.Name)
		}
	}
}
