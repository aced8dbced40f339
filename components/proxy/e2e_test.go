package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/proxy/internal/nettest"
	"kiln.dev/kiln/components/proxy/iptables"
	"kiln.dev/kiln/components/testenv"
)

const (
	e2eNS    = "shop"
	e2eNode  = "node-e2e"
	dnsIP    = "10.43.0.10"
	podPort  = 8080
	svcPort  = 80
	deadline = 15 * time.Second
)

// e2e is a running proxy and DNS server in a node namespace with three
// pods serving HTTP, against a real API server.
type e2e struct {
	t       *testing.T
	c       *nettest.Cluster
	cs      kubernetes.Interface
	rules   *iptables.Rules
	proxier *proxy.Proxier
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	nettest.Require(t)
	env := testenv.Start(t, testenv.Options{})
	c := nettest.NewCluster(t, "kt"+nettest.RunID(), 3)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))

	// Each pod answers HTTP with its name.
	for i, pod := range c.Pods {
		ln := pod.Listen(t, "tcp", fmt.Sprintf(":%d", podPort))
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "pod%d", i)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}

	rules, err := iptables.New(iptables.Config{NetNS: c.Node.Path, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{
		Client: env.Clientset, Rules: rules, NodeName: e2eNode,
		NodeIPs: []netip.Addr{c.NodeIP}, ClusterCIDR: c.PodCIDR, ClusterDNS: netip.MustParseAddr(dnsIP),
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	runProxy(t, p)

	// Cluster DNS on the node at 10.43.0.10, forwarding to a resolver
	// of the test's own.
	if err := c.Node.Do(func() error { return dns.EnsureInterface(dns.DefaultInterface, netip.MustParseAddr(dnsIP)) }); err != nil {
		t.Fatal(err)
	}
	srv, err := dns.New(dns.Config{
		Client:      env.Clientset,
		PacketConns: []net.PacketConn{c.Node.ListenPacket(t, "udp", dnsIP+":53")},
		Listeners:   []net.Listener{c.Node.Listen(t, "tcp", dnsIP+":53")},
		Upstreams:   []string{testUpstream(t)},
		Logger:      log,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dns Run: %v", err)
		}
	})
	<-srv.Ready()

	if _, err := env.Clientset.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e2eNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return &e2e{t: t, c: c, cs: env.Clientset, rules: rules, proxier: p}
}

// testUpstream is a resolver on the host's 127.0.0.1 (UDP and TCP on one
// port) that knows one name.
func testUpstream(t *testing.T) string {
	t.Helper()
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg).SetReply(req)
		if req.Question[0].Name == "outside.example." {
			m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: "outside.example.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 30}, A: net.IPv4(192, 0, 2, 7)}}
		} else {
			m.Rcode = mdns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if ln == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// service creates a Service in e2eNS whose port "http" targets the named
// container port "web", and an EndpointSlice with the given pods (by
// index) on port 8080, on e2eNode unless listed in remote.
func (e *e2e) service(name string, mod func(*corev1.Service), pods []int, remote ...int) *corev1.Service {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e2eNS},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: svcPort, TargetPort: intstr.FromString("web"), Protocol: corev1.ProtocolTCP}}},
	}
	if mod != nil {
		mod(svc)
	}
	out, err := e.cs.CoreV1().Services(e2eNS).Create(e.t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.cs.DiscoveryV1().EndpointSlices(e2eNS).Create(e.t.Context(), e.slice(name, pods, remote...), metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *e2e) slice(name string, pods []int, remote ...int) *discoveryv1.EndpointSlice {
	portName, port, proto := "http", int32(podPort), corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: e2eNS, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, i := range pods {
		ready, node := true, e2eNode
		if slices.Contains(remote, i) {
			node = "node-other"
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.c.PodIP(i).String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}, NodeName: &node,
		})
	}
	return s
}

func (e *e2e) setEndpoints(name string, pods ...int) {
	e.t.Helper()
	api := e.cs.DiscoveryV1().EndpointSlices(e2eNS)
	cur, err := api.Get(e.t.Context(), name+"-1", metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	s := e.slice(name, pods)
	s.ResourceVersion = cur.ResourceVersion
	if _, err := api.Update(e.t.Context(), s, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// get makes one request on a new connection and returns the body.
func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// spread makes n requests and counts the answers by pod; it waits for the
// first to succeed (the rules may still be on their way).
func (e *e2e) spread(from *nettest.NS, url string, n int) map[string]int {
	e.t.Helper()
	client := from.HTTPClient()
	// Until the rules are in, a SYN to a ClusterIP goes out the default
	// route and is lost; probe with a short timeout rather than wait
	// for TCP's retransmit.
	probe := from.HTTPClient()
	probe.Timeout = 300 * time.Millisecond
	end := time.Now().Add(deadline)
	for {
		_, err := get(e.t.Context(), probe, url)
		if err == nil {
			break
		}
		if time.Now().After(end) {
			e.t.Fatalf("GET %s from %s: %v", url, from.Name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := map[string]int{}
	for range n {
		body, err := get(e.t.Context(), client, url)
		if err != nil {
			e.t.Fatalf("GET %s from %s: %v", url, from.Name, err)
		}
		seen[body]++
	}
	return seen
}

// eventuallySpread repeats spread until want holds.
func (e *e2e) eventuallySpread(from *nettest.NS, url string, n int, what string, want func(map[string]int) bool) {
	e.t.Helper()
	end := time.Now().Add(deadline)
	for {
		got := e.spread(from, url, n)
		if want(got) {
			return
		}
		if time.Now().After(end) {
			e.t.Fatalf("%s: GET %s from %s answered by %v", what, url, from.Name, got)
		}
	}
}

func allThree(seen map[string]int) bool { return len(seen) == 3 }

func only(pod string) func(map[string]int) bool {
	return func(seen map[string]int) bool { return len(seen) == 1 && seen[pod] > 0 }
}

func (e *e2e) save() string {
	e.t.Helper()
	out, err := e.c.Node.Exec(e.t.Context(), "iptables-save")
	if err != nil {
		e.t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

func url(ip string, port int32) string {
	return fmt.Sprintf("http://%s/", net.JoinHostPort(ip, fmt.Sprint(port)))
}

// TestE2E_services runs the proxy with real iptables in a node namespace
// and reaches pods through Services from the node, from a pod and from
// outside.
func TestE2E_services(t *testing.T) {
	e := startE2E(t)
	web := e.service("web", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }, []int{0, 1, 2})
	clusterURL := url(web.Spec.ClusterIP, svcPort)
	nodePort := web.Spec.Ports[0].NodePort

	t.Run("ClusterIP from the node reaches all three pods", func(t *testing.T) {
		e.eventuallySpread(e.c.Node, clusterURL, 60, "spread", allThree)
	})
	t.Run("ClusterIP from a pod, itself included", func(t *testing.T) {
		e.eventuallySpread(e.c.Pods[0], clusterURL, 60, "spread", allThree)
	})
	t.Run("NodePort on the node address from outside", func(t *testing.T) {
		e.eventuallySpread(e.c.Outside, url(e.c.NodeIP.String(), nodePort), 60, "spread", allThree)
	})
	t.Run("NodePort on the node address and 127.0.0.1 from the node", func(t *testing.T) {
		e.eventuallySpread(e.c.Node, url(e.c.NodeIP.String(), nodePort), 30, "spread", allThree)
		e.eventuallySpread(e.c.Node, url("127.0.0.1", nodePort), 30, "spread", allThree)
	})

	t.Run("scaling to one endpoint", func(t *testing.T) {
		e.setEndpoints("web", 1)
		e.eventuallySpread(e.c.Node, clusterURL, 20, "after scaling to pod1", only("pod1"))
		e.setEndpoints("web", 0, 1, 2)
		e.eventuallySpread(e.c.Node, clusterURL, 60, "after scaling back", allThree)
	})

	t.Run("session affinity pins one pod", func(t *testing.T) {
		sticky := e.service("sticky", func(s *corev1.Service) { s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP }, []int{0, 1, 2})
		seen := e.spread(e.c.Node, url(sticky.Spec.ClusterIP, svcPort), 30)
		if len(seen) != 1 {
			t.Errorf("answered by %v, want one pod", seen)
		}
	})

	t.Run("externalTrafficPolicy Local from outside", func(t *testing.T) {
		local := e.service("local", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		}, []int{0, 1, 2}, 1, 2)
		e.eventuallySpread(e.c.Outside, url(e.c.NodeIP.String(), local.Spec.Ports[0].NodePort), 20, "local endpoints only", only("pod0"))
	})

	t.Run("no endpoints refuses at once", func(t *testing.T) {
		empty := e.service("empty", nil, nil)
		addr := net.JoinHostPort(empty.Spec.ClusterIP, fmt.Sprint(svcPort))
		// Until its rule is in, a SYN to the ClusterIP is lost and the
		// refusal waits for TCP's retransmit; time the dial after.
		end := time.Now().Add(deadline)
		for !strings.Contains(e.save(), e2eNS+"/empty:http has no endpoints") {
			if time.Now().After(end) {
				t.Fatal("no REJECT rule for the Service without endpoints")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// From the node itself (OUTPUT) and from a pod, whose
		// connection the node forwards: pod traffic is accepted in
		// FORWARD, but not before the Service rules have refused it.
		for _, from := range []*nettest.NS{e.c.Node, e.c.Pods[0]} {
			for {
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				start := time.Now()
				conn, err := from.Dial(ctx, "tcp", addr)
				took := time.Since(start)
				cancel()
				if conn != nil {
					conn.Close()
				}
				if errors.Is(err, syscall.ECONNREFUSED) {
					if took > time.Second {
						t.Errorf("from %s: refused after %v, want at once", from.Name, took)
					}
					break
				}
				if time.Now().After(end) {
					t.Fatalf("dial %s from %s: %v after %v, want ECONNREFUSED", addr, from.Name, err, took)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})

	t.Run("deleting the Service removes its rules", func(t *testing.T) {
		if err := e.cs.CoreV1().Services(e2eNS).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		end := time.Now().Add(deadline)
		for strings.Contains(e.save(), e2eNS+"/web:") {
			if time.Now().After(end) {
				t.Fatalf("rules of %s/web still there:\n%s", e2eNS, e.save())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st := e.proxier.Stats(); st.PartialSyncs == 0 || st.Failures != 0 {
			t.Errorf("stats %+v, want partial syncs and no failure", st)
		}
	})

	t.Run("cleanup removes every kiln rule", func(t *testing.T) {
		// The proxy still runs; this is what kiln server
		// --cleanup-network does on a stopped node.
		if err := e.rules.Cleanup(t.Context()); err != nil {
			t.Fatal(err)
		}
		if out := e.save(); strings.Contains(out, "KILN") {
			t.Errorf("KILN rules after Cleanup:\n%s", out)
		}
	})
}

// exchange sends one DNS query from inside ns.
func exchange(t *testing.T, from *nettest.NS, network, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	conn, err := from.Dial(t.Context(), network, dnsIP+":53")
	if err != nil {
		t.Fatalf("dial DNS from %s: %v", from.Name, err)
	}
	defer conn.Close()
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.ExchangeWithConn(new(mdns.Msg).SetQuestion(name, qtype), &mdns.Conn{Conn: conn})
	if err != nil {
		t.Fatalf("%s %s from %s: %v", network, name, from.Name, err)
	}
	return r
}

func answers(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.SRV:
			out = append(out, fmt.Sprintf("%d %s", v.Port, v.Target))
		}
	}
	slices.Sort(out)
	return out
}

// TestE2E_dns queries the cluster DNS from a pod namespace at 10.43.0.10
// and reaches a Service by name.
func TestE2E_dns(t *testing.T) {
	e := startE2E(t)
	web := e.service("web", nil, []int{0, 1, 2})
	e.service("db", func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone }, []int{1, 2})
	// A kube-dns Service at the DNS address, for kubectl to show: the
	// proxy must not write rules that take the queries away.
	e.service("kube-dns", func(s *corev1.Service) {
		s.Spec.ClusterIP = dnsIP
		s.Spec.Ports = []corev1.ServicePort{{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP}}
	}, nil)
	pod := e.c.Pods[0]
	const domain = ".shop.svc.cluster.local."

	end := time.Now().Add(deadline)
	for len(exchange(t, pod, "udp", "db"+domain, mdns.TypeA).Answer) == 0 {
		if time.Now().After(end) {
			t.Fatal("db never resolved")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, network := range []string{"udp", "tcp"} {
		if got := answers(exchange(t, pod, network, "web"+domain, mdns.TypeA)); !slices.Equal(got, []string{web.Spec.ClusterIP}) {
			t.Errorf("%s web: %q, want %s", network, got, web.Spec.ClusterIP)
		}
		if got, want := answers(exchange(t, pod, network, "db"+domain, mdns.TypeA)), []string{"10.42.0.11", "10.42.0.12"}; !slices.Equal(got, want) {
			t.Errorf("%s headless db: %q, want %q", network, got, want)
		}
		if got, want := answers(exchange(t, pod, network, "_http._tcp.web"+domain, mdns.TypeSRV)), []string{"80 web" + domain}; !slices.Equal(got, want) {
			t.Errorf("%s SRV: %q, want %q", network, got, want)
		}
		if got := answers(exchange(t, pod, network, "outside.example.", mdns.TypeA)); !slices.Equal(got, []string{"192.0.2.7"}) {
			t.Errorf("%s forwarded name: %q, want the upstream's 192.0.2.7", network, got)
		}
	}

	// By name from inside a pod: resolve, then connect.
	ip := answers(exchange(t, pod, "udp", "web"+domain, mdns.TypeA))
	if len(ip) != 1 {
		t.Fatalf("web resolved to %q", ip)
	}
	e.eventuallySpread(pod, url(ip[0], svcPort), 30, "web by name", allThree)
	if out := e.save(); strings.Contains(out, dnsIP) {
		t.Errorf("rules mention the DNS address %s:\n%s", dnsIP, out)
	}
}
