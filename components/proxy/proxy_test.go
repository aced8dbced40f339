package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/fakerules"
	"kiln.dev/kiln/components/testenv"
)

const ns = "default"

// startProxy runs a proxy with fake rules against a fresh API server and
// waits for its first sync.
func startProxy(t *testing.T, cfg proxy.Config) (*fakerules.Fake, *proxy.Proxier, kubernetes.Interface) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	f := fakerules.New()
	cfg.Client, cfg.Rules = env.Clientset, f
	if cfg.NodeName == "" {
		cfg.NodeName = "node-a"
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := proxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runProxy(t, p)
	return f, p, env.Clientset
}

func runProxy(t *testing.T, p *proxy.Proxier) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("Run returned before the first sync: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no first sync in 30s")
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func createService(t *testing.T, cs kubernetes.Interface, name string, mod func(*corev1.Service)) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("web"), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mod != nil {
		mod(svc)
	}
	out, err := cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type ep struct {
	ip          string
	ready       bool
	terminating bool
	node        string
}

func slice(svc, name, portName string, port int32, eps ...ep) *discoveryv1.EndpointSlice {
	proto := corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, e := range eps {
		e := e
		end := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: &e.ready, Serving: &e.ready, Terminating: &e.terminating}}
		if e.terminating {
			serving := true
			end.Conditions.Serving = &serving
		}
		if e.node != "" {
			end.NodeName = &e.node
		}
		s.Endpoints = append(s.Endpoints, end)
	}
	return s
}

func createSlice(t *testing.T, cs kubernetes.Interface, s *discoveryv1.EndpointSlice) {
	t.Helper()
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func updateSlice(t *testing.T, cs kubernetes.Interface, s *discoveryv1.EndpointSlice) {
	t.Helper()
	cur, err := cs.DiscoveryV1().EndpointSlices(ns).Get(t.Context(), s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.ResourceVersion = cur.ResourceVersion
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Update(t.Context(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func key(name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }

func endpoints(ports []proxy.ServicePort) []string {
	if len(ports) == 0 {
		return nil
	}
	var out []string
	for _, e := range ports[0].Endpoints {
		s := e.String()
		if e.Local {
			s += " local"
		}
		out = append(out, s)
	}
	return out
}

func TestProxier_ruleSet(t *testing.T) {
	f, _, cs := startProxy(t, proxy.Config{
		ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"),
		NodeIPs:     []netip.Addr{netip.MustParseAddr("192.168.1.5")},
		ClusterDNS:  netip.MustParseAddr("10.43.0.10"),
	})

	t.Run("named port resolved per slice, only ready endpoints", func(t *testing.T) {
		svc := createService(t, cs, "web", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		})
		// Pods whose "web" container port differs are in different
		// slices, each carrying its own port number.
		createSlice(t, cs, slice("web", "web-a", "http", 8080, ep{ip: "10.42.0.5", ready: true, node: "node-a"}, ep{ip: "10.42.0.6", ready: false}))
		createSlice(t, cs, slice("web", "web-b", "http", 9090, ep{ip: "10.42.1.7", ready: true, node: "node-b"}))
		want := []string{"10.42.0.5:8080 local", "10.42.1.7:9090"}
		eventually(t, "web's endpoints", func() bool { return slices.Equal(endpoints(f.Service(key("web"))), want) })
		sp := f.Service(key("web"))[0]
		if sp.ClusterIP.String() != svc.Spec.ClusterIP || sp.Port != 80 || sp.NodePort != svc.Spec.Ports[0].NodePort || sp.NodePort == 0 {
			t.Errorf("port %+v, want %s:80 with NodePort %d", sp, svc.Spec.ClusterIP, svc.Spec.Ports[0].NodePort)
		}
		if !sp.ExternalLocal || sp.AffinitySeconds != 10800 || sp.Protocol != corev1.ProtocolTCP {
			t.Errorf("port %+v, want Local policy and 10800 s affinity", sp)
		}
		rs := f.Current()
		if rs.ClusterCIDR.String() != "10.42.0.0/16" || !slices.Equal(rs.NodePortAddresses, []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("127.0.0.1")}) {
			t.Errorf("node settings %v %v", rs.ClusterCIDR, rs.NodePortAddresses)
		}
	})

	t.Run("terminating endpoints when none is ready", func(t *testing.T) {
		createService(t, cs, "draining", nil)
		createSlice(t, cs, slice("draining", "draining-a", "http", 8080, ep{ip: "10.42.0.8", terminating: true}, ep{ip: "10.42.0.9"}))
		eventually(t, "the terminating endpoint", func() bool {
			return slices.Equal(endpoints(f.Service(key("draining"))), []string{"10.42.0.8:8080"})
		})
	})

	t.Run("no endpoints", func(t *testing.T) {
		createService(t, cs, "lonely", nil)
		eventually(t, "lonely's rules", func() bool {
			ports := f.Service(key("lonely"))
			return len(ports) == 1 && len(ports[0].Endpoints) == 0
		})
	})

	t.Run("no rules for headless, ExternalName and the DNS address", func(t *testing.T) {
		createService(t, cs, "headless", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })
		createService(t, cs, "external", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}
		})
		createService(t, cs, "kube-dns", func(s *corev1.Service) { s.Spec.ClusterIP = "10.43.0.10" })
		// A marker created after them: once it is in, they were synced.
		createService(t, cs, "marker", nil)
		eventually(t, "the marker", func() bool { return f.Service(key("marker")) != nil })
		for _, name := range []string{"headless", "external", "kube-dns"} {
			if ports := f.Service(key(name)); ports != nil {
				t.Errorf("%s has rules: %+v", name, ports)
			}
		}
	})

	t.Run("deleted service", func(t *testing.T) {
		if err := cs.CoreV1().Services(ns).Delete(t.Context(), "lonely", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "lonely's rules to go", func() bool { return f.Service(key("lonely")) == nil })
		last := f.Calls()[len(f.Calls())-1]
		if last.Kind != fakerules.KindSyncServices || !slices.Contains(last.Changed, key("lonely")) {
			t.Errorf("last call %s %v, want a partial sync naming lonely", last.Kind, last.Changed)
		}
	})
}

func TestProxier_debounce(t *testing.T) {
	const window = time.Second
	f, _, cs := startProxy(t, proxy.Config{MinSyncPeriod: window})
	before := len(f.Calls())
	start := time.Now()
	var wg sync.WaitGroup
	const n = 10
	for i := range n {
		wg.Go(func() {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("burst-%d", i), Namespace: ns},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
			if _, err := cs.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	burst := time.Since(start)
	eventually(t, "the burst's rules", func() bool {
		rs := f.Current()
		for i := range n {
			if rs.Services[key(fmt.Sprintf("burst-%d", i))] == nil {
				return false
			}
		}
		return true
	})
	calls := f.Calls()[before:]
	// A burst is batched: it may straddle one window boundary, and a slow
	// machine may spread it over more windows, but there are never more
	// syncs than windows it touches, and every sync is partial.
	maxCalls := 2 + int(burst/window)
	changed := map[string]bool{}
	for _, c := range calls {
		if c.Kind != fakerules.KindSyncServices {
			t.Errorf("a %s in the burst, want only partial syncs", c.Kind)
		}
		for _, k := range c.Changed {
			changed[fmt.Sprint(k)] = true
		}
	}
	if len(calls) > maxCalls || len(changed) != n {
		for _, c := range calls {
			t.Logf("%s %v", c.Kind, c.Changed)
		}
		t.Errorf("%d syncs changing %d services for a burst of %d changes over %v, want at most %d syncs of all %d",
			len(calls), len(changed), n, burst, maxCalls, n)
	}
}

func TestProxier_failureThenFullSync(t *testing.T) {
	f, p, cs := startProxy(t, proxy.Config{})
	f.FailNext(fakerules.KindSyncServices, errors.New("iptables-restore: boom"))
	createService(t, cs, "retry", nil)
	eventually(t, "retry's rules", func() bool { return f.Service(key("retry")) != nil })
	calls := f.Calls()
	var kinds []fakerules.Kind
	for _, c := range calls[1:] {
		kinds = append(kinds, c.Kind)
	}
	// The partial sync fails; the retry is a full sync.
	if len(kinds) < 2 || kinds[0] != fakerules.KindSyncServices || calls[1].Err == nil || kinds[len(kinds)-1] != fakerules.KindSync {
		t.Errorf("calls after start %v, want a failed SyncServices then a Sync", kinds)
	}
	if st := p.Stats(); st.Failures != 1 || st.FullSyncs < 2 {
		t.Errorf("stats %+v, want 1 failure and a second full sync", st)
	}
}

func TestProxier_periodicFullSync(t *testing.T) {
	f, _, _ := startProxy(t, proxy.Config{SyncPeriod: 100 * time.Millisecond})
	eventually(t, "three full syncs", func() bool {
		n := 0
		for _, c := range f.Calls() {
			if c.Kind == fakerules.KindSync {
				n++
			}
		}
		return n >= 3
	})
}

func TestProxier_sliceUpdate(t *testing.T) {
	f, p, cs := startProxy(t, proxy.Config{})
	createService(t, cs, "scale", nil)
	s := slice("scale", "scale-a", "http", 8080, ep{ip: "10.42.0.1", ready: true}, ep{ip: "10.42.0.2", ready: true}, ep{ip: "10.42.0.3", ready: true})
	createSlice(t, cs, s)
	eventually(t, "three endpoints", func() bool { return len(endpoints(f.Service(key("scale")))) == 3 })
	s.Endpoints = s.Endpoints[:1]
	updateSlice(t, cs, s)
	eventually(t, "one endpoint", func() bool { return len(endpoints(f.Service(key("scale")))) == 1 })

	// A write that changes nothing the rules use is no sync.
	before := p.Stats().PartialSyncs
	s.Labels["unrelated"] = "x"
	updateSlice(t, cs, s)
	createService(t, cs, "marker", nil)
	eventually(t, "the marker", func() bool { return f.Service(key("marker")) != nil })
	last := f.Calls()[len(f.Calls())-1]
	if slices.Contains(last.Changed, key("scale")) {
		t.Errorf("partial sync %v includes scale, whose rules did not change", last.Changed)
	}
	if got := p.Stats().PartialSyncs - before; got > 2 {
		t.Errorf("%d partial syncs, want at most 2", got)
	}
}

func TestNew_validates(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	f := fakerules.New()
	for _, tc := range []struct {
		name string
		cfg  proxy.Config
	}{
		{"no client", proxy.Config{Rules: f, NodeName: "n"}},
		{"no rules", proxy.Config{Client: env.Clientset, NodeName: "n"}},
		{"no node name", proxy.Config{Client: env.Clientset, Rules: f}},
		{"IPv6 node IP", proxy.Config{Client: env.Clientset, Rules: f, NodeName: "n", NodeIPs: []netip.Addr{netip.MustParseAddr("::1")}}},
		{"negative period", proxy.Config{Client: env.Clientset, Rules: f, NodeName: "n", SyncPeriod: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := proxy.New(tc.cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestProxier_Run_twice(t *testing.T) {
	_, p, _ := startProxy(t, proxy.Config{})
	if err := p.Run(t.Context()); !errors.Is(err, proxy.ErrRunTwice) {
		t.Errorf("second Run = %v, want ErrRunTwice", err)
	}
}
