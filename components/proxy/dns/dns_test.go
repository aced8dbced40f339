package dns_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/testenv"
)

// upstream is a test resolver on 127.0.0.1, UDP and TCP on one port. It
// answers example.test. with 192.0.2.1 and big.test. with 60 TXT records,
// truncated over UDP to what the query allows.
func upstream(t *testing.T) string {
	t.Helper()
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		m := new(mdns.Msg).SetReply(req)
		switch req.Question[0].Name {
		case "example.test.":
			m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: "example.test.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		case "big.test.":
			for i := range 60 {
				m.Answer = append(m.Answer, &mdns.TXT{Hdr: mdns.RR_Header{Name: "big.test.", Rrtype: mdns.TypeTXT, Class: mdns.ClassINET, Ttl: 60},
					Txt: []string{fmt.Sprintf("record %02d %s", i, strings.Repeat("x", 40))}})
			}
		default:
			m.Rcode = mdns.RcodeNameError
		}
		if _, udp := w.LocalAddr().(*net.UDPAddr); udp {
			size := mdns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			m.Truncate(size)
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

// startDNS runs a DNS server on 127.0.0.1 (UDP and TCP on one port)
// against a fresh API server, forwarding to a test upstream.
func startDNS(t *testing.T) (string, kubernetes.Interface) {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	up := upstream(t)
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
	srv, err := dns.New(dns.Config{
		Client: env.Clientset, PacketConns: []net.PacketConn{pc}, Listeners: []net.Listener{ln},
		Upstreams: []string{up, pc.LocalAddr().String()}, // itself: dropped
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
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
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready in 30s")
	}
	return pc.LocalAddr().String(), env.Clientset
}

func query(t *testing.T, addr, network, name string, qtype uint16, edns bool) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg).SetQuestion(name, qtype)
	if edns {
		m.SetEdns0(4096, false)
	}
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, mdns.TypeToString[qtype], err)
	}
	return r
}

// records renders the answer section compactly: "A 10.43.0.5",
// "SRV 80 web.shop.svc.cluster.local.".
func records(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch r := rr.(type) {
		case *mdns.A:
			out = append(out, "A "+r.A.String())
		case *mdns.SRV:
			out = append(out, fmt.Sprintf("SRV %d %s", r.Port, r.Target))
		case *mdns.CNAME:
			out = append(out, "CNAME "+r.Target)
		case *mdns.PTR:
			out = append(out, "PTR "+r.Ptr)
		case *mdns.SOA:
			out = append(out, "SOA "+r.Ns)
		case *mdns.TXT:
			out = append(out, "TXT")
		default:
			out = append(out, rr.String())
		}
	}
	slices.Sort(out)
	return out
}

func mkSlice(t *testing.T, cs kubernetes.Interface, ns, svc string, ports map[string]int32, eps ...discoveryv1.Endpoint) {
	t.Helper()
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{GenerateName: svc + "-", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
	}
	for name, p := range ports {
		proto := corev1.ProtocolTCP
		s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: &name, Port: &p, Protocol: &proto})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func endpoint(ip string, ready bool, hostname string) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}
	if hostname != "" {
		e.Hostname = &hostname
	}
	return e
}

func TestServer_clusterNames(t *testing.T) {
	addr, cs := startDNS(t)
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	web, err := cs.CoreV1().Services("shop").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
			{Name: "metrics", Port: 9100, Protocol: corev1.ProtocolTCP},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone,
			Ports: []corev1.ServicePort{{Name: "pg", Port: 5432}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "shop"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.test"}},
	} {
		if _, err := cs.CoreV1().Services("shop").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkSlice(t, cs, "shop", "db", map[string]int32{"pg": 5432},
		endpoint("10.42.0.21", true, "db-0"), endpoint("10.42.0.22", true, ""), endpoint("10.42.0.23", false, "db-2"))
	const svcDomain = ".shop.svc.cluster.local."

	// The informers see the objects soon; wait for the last one.
	deadline := time.Now().Add(10 * time.Second)
	for len(query(t, addr, "udp", "db"+svcDomain, mdns.TypeA, false).Answer) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("db never resolved")
		}
		time.Sleep(20 * time.Millisecond)
	}

	tests := []struct {
		name  string
		qname string
		qtype uint16
		rcode int
		want  []string
		extra []string
	}{
		{"ClusterIP", "web" + svcDomain, mdns.TypeA, mdns.RcodeSuccess, []string{"A " + web.Spec.ClusterIP}, nil},
		{"case-insensitive", "WEB.Shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A " + web.Spec.ClusterIP}, nil},
		{"no IPv6", "web" + svcDomain, mdns.TypeAAAA, mdns.RcodeSuccess, nil, nil},
		{"headless: ready endpoints", "db" + svcDomain, mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.42.0.21", "A 10.42.0.22"}, nil},
		{"headless: hostname", "db-0.db" + svcDomain, mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.42.0.21"}, nil},
		{"headless: dashed address", "10-42-0-22.db" + svcDomain, mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.42.0.22"}, nil},
		{"headless: not-ready hostname", "db-2.db" + svcDomain, mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"SRV of a named port", "_http._tcp.web" + svcDomain, mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{"SRV 80 web" + svcDomain}, []string{"A " + web.Spec.ClusterIP}},
		{"SRV of every port", "web" + svcDomain, mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{"SRV 80 web" + svcDomain, "SRV 9100 web" + svcDomain}, nil},
		{"SRV of a headless port", "_pg._tcp.db" + svcDomain, mdns.TypeSRV, mdns.RcodeSuccess,
			[]string{"SRV 5432 10-42-0-22.db" + svcDomain, "SRV 5432 db-0.db" + svcDomain}, []string{"A 10.42.0.21", "A 10.42.0.22"}},
		{"SRV of an unknown port", "_nope._tcp.web" + svcDomain, mdns.TypeSRV, mdns.RcodeNameError, nil, nil},
		{"ExternalName", "ext" + svcDomain, mdns.TypeA, mdns.RcodeSuccess, []string{"CNAME example.test."}, nil},
		{"pod", "10-42-0-7.shop.pod.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"A 10.42.0.7"}, nil},
		{"bad pod name", "nope.shop.pod.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"unknown service", "nope" + svcDomain, mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"unknown namespace", "web.nope.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"search-list miss", "example.test.shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
		{"namespace", "shop.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, nil, nil},
		{"apex SOA", "cluster.local.", mdns.TypeSOA, mdns.RcodeSuccess, []string{"SOA ns.dns.cluster.local."}, nil},
		{"outside name in the domain", "other.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, network := range []string{"udp", "tcp"} {
				r := query(t, addr, network, tc.qname, tc.qtype, false)
				if r.Rcode != tc.rcode || !slices.Equal(records(r.Answer), tc.want) {
					t.Errorf("%s: rcode %s answer %q, want %s %q", network, mdns.RcodeToString[r.Rcode], records(r.Answer), mdns.RcodeToString[tc.rcode], tc.want)
				}
				if !r.Authoritative {
					t.Errorf("%s: answer not authoritative", network)
				}
				if tc.extra != nil && !slices.Equal(records(r.Extra), tc.extra) {
					t.Errorf("%s: extra %q, want %q", network, records(r.Extra), tc.extra)
				}
				// Negative answers carry the SOA, for negative caching.
				if len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != mdns.TypeSOA) {
					t.Errorf("%s: negative answer without SOA: %v", network, r.Ns)
				}
			}
		})
	}

	t.Run("PTR of a ClusterIP", func(t *testing.T) {
		rev, _ := mdns.ReverseAddr(web.Spec.ClusterIP)
		r := query(t, addr, "udp", rev, mdns.TypePTR, false)
		if want := []string{"PTR web" + svcDomain}; !slices.Equal(records(r.Answer), want) {
			t.Errorf("answer %q, want %q", records(r.Answer), want)
		}
	})
}

func TestServer_forwards(t *testing.T) {
	addr, _ := startDNS(t)
	for _, network := range []string{"udp", "tcp"} {
		r := query(t, addr, network, "example.test.", mdns.TypeA, false)
		if !slices.Equal(records(r.Answer), []string{"A 192.0.2.1"}) {
			t.Errorf("%s: answer %q, want the upstream's", network, records(r.Answer))
		}
		if r := query(t, addr, network, "missing.test.", mdns.TypeA, false); r.Rcode != mdns.RcodeNameError {
			t.Errorf("%s: rcode %s, want the upstream's NXDOMAIN", network, mdns.RcodeToString[r.Rcode])
		}
	}

	t.Run("truncation", func(t *testing.T) {
		// Over UDP without EDNS the client gets part of the answer and
		// TC; over TCP, and over UDP with room, all 60 records (the
		// server fetched them from upstream over TCP).
		r := query(t, addr, "udp", "big.test.", mdns.TypeTXT, false)
		if !r.Truncated || len(r.Answer) >= 60 {
			t.Errorf("UDP/512: TC %v with %d records, want TC and fewer than 60", r.Truncated, len(r.Answer))
		}
		if r := query(t, addr, "tcp", "big.test.", mdns.TypeTXT, false); r.Truncated || len(r.Answer) != 60 {
			t.Errorf("TCP: TC %v with %d records, want all 60", r.Truncated, len(r.Answer))
		}
		if r := query(t, addr, "udp", "big.test.", mdns.TypeTXT, true); r.Truncated || len(r.Answer) != 60 {
			t.Errorf("UDP/4096: TC %v with %d records, want all 60", r.Truncated, len(r.Answer))
		}
	})
}

func TestNew_validates(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for _, tc := range []struct {
		name string
		cfg  dns.Config
	}{
		{"no client", dns.Config{}},
		{"bad listen", dns.Config{Client: env.Clientset, Listen: []string{"10.43.0.10"}}},
		{"bad upstream", dns.Config{Client: env.Clientset, Upstreams: []string{"1.1.1.1"}}},
		{"bad domain", dns.Config{Client: env.Clientset, Domain: "a..b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := dns.New(tc.cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}
