package ingress_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/proxy/ingress"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns       = "default"
	nodeName = "ing-node"
)

// e2e is a real API server and an ingress controller on 127.0.0.1 random
// ports, acting as node ing-node (the identity the proxy has on an
// agent), so that the node authorizer's rules are exercised too.
type e2e struct {
	t         *testing.T
	api       *testenv.Env
	cs        kubernetes.Interface // admin
	node      kubernetes.Interface // the node's credentials
	httpAddr  string
	httpsAddr string
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	api := testenv.Start(t, testenv.Options{})
	certPEM, keyPEM, err := api.CA.IssueClient(apiserver.NodeUserPrefix+nodeName, []string{apiserver.GroupNodes}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nrc := &rest.Config{Host: api.URL, TLSClientConfig: rest.TLSClientConfig{CAData: api.CAPEM, CertData: certPEM, KeyData: keyPEM}}
	nrc.ContentType = "application/json"
	node, err := kubernetes.NewForConfig(nrc)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ingress.New(ingress.Config{
		Client: node, Listener: ln, TLSListener: tln,
		StatusIPs: []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		Logger:    slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready in 30s")
	}
	return &e2e{t: t, api: api, cs: api.Clientset, node: node, httpAddr: ln.Addr().String(), httpsAddr: tln.Addr().String()}
}

// backend runs an HTTP server on 127.0.0.1 that answers with its name and
// what it was sent; /stream sends a line, then another once release is
// closed (or the request ends); /ws is a WebSocket-style upgrade that echoes. It returns the
// port.
func backend(t *testing.T, name string, release <-chan struct{}) int32 {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stream":
			// A known length: ReverseProxy flushes unknown-length
			// bodies anyway, so only this shows FlushInterval at work.
			w.Header().Set("Content-Length", strconv.Itoa(len("first\nsecond\n")))
			fmt.Fprint(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, "second\n")
		case "/ws":
			if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				http.Error(w, "not an upgrade", http.StatusBadRequest)
				return
			}
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				wsAccept(r.Header.Get("Sec-WebSocket-Key")))
			rw.Flush()
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			fmt.Fprintf(rw, "%s echo %s", name, line)
			rw.Flush()
		default:
			fmt.Fprintf(w, "%s host=%s path=%s xff=%s proto=%s fhost=%s", name, r.Host, r.URL.Path,
				r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
		}
	}))
	t.Cleanup(srv.Close)
	return int32(srv.Listener.Addr().(*net.TCPAddr).Port)
}

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// service creates a Service without a selector and, per endpoint port, an
// EndpointSlice with 127.0.0.1 at that port: the backends are plain
// servers on the test's loopback, so no pods are needed, and no
// endpointslice controller runs to replace the slices. Its one port is
// 80, named http.
func (e *e2e) service(name string, ports ...int32) {
	e.t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}}}
	if _, err := e.cs.CoreV1().Services(ns).Create(e.t.Context(), svc, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	for i, p := range ports {
		e.slice(fmt.Sprintf("%s-%d", name, i), name, p, true)
	}
}

func (e *e2e) slice(name, svc string, port int32, ready bool) {
	e.t.Helper()
	pn, proto := "http", corev1.ProtocolTCP
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &pn, Port: &port, Protocol: &proto}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if _, err := e.cs.DiscoveryV1().EndpointSlices(ns).Create(e.t.Context(), s, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

type route struct {
	host, path string
	typ        networkingv1.PathType
	svc        string
	port       networkingv1.ServiceBackendPort
}

func port80() networkingv1.ServiceBackendPort { return networkingv1.ServiceBackendPort{Number: 80} }

func newIngress(name string, class *string, routes ...route) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.IngressSpec{IngressClassName: class}}
	for _, r := range routes {
		if r.host == "" && r.path == "" {
			ing.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: r.svc, Port: r.port}}
			continue
		}
		typ := r.typ
		rule := networkingv1.IngressRule{Host: r.host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: r.path, PathType: &typ,
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: r.svc, Port: r.port}}}}}}}
		ing.Spec.Rules = append(ing.Spec.Rules, rule)
	}
	return ing
}

// get sends a request for url through the ingress (http:// to its HTTP
// listener, https:// to its HTTPS one, with the URL's host as Host and
// SNI) and returns the status and body.
func (e *e2e) get(url string, roots *x509.CertPool) (int, string, error) {
	addr := e.httpAddr
	if strings.HasPrefix(url, "https://") {
		addr = e.httpsAddr
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// expect polls until url answers code with a body starting with prefix:
// the controller applies API changes asynchronously.
func (e *e2e) expect(url string, code int, prefix string) {
	e.t.Helper()
	var last string
	eventually(e.t, fmt.Sprintf("%s to answer %d %q", url, code, prefix), func() bool {
		c, body, err := e.get(url, nil)
		last = fmt.Sprintf("%d %q %v", c, body, err)
		return err == nil && c == code && strings.HasPrefix(body, prefix)
	}, func() string { return last })
}

func eventually(t *testing.T, what string, cond func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestController_routing(t *testing.T) {
	e := startE2E(t)
	ctx := t.Context()
	e.service("web", backend(t, "web", nil))
	e.service("api", backend(t, "api", nil))
	e.service("exact", backend(t, "exact", nil))
	e.service("fallback", backend(t, "fallback", nil))
	e.service("empty")               // no endpoints: 503
	e.service("dead", closedPort(t)) // an endpoint nobody listens on: 502
	e.service("pair", backend(t, "pair-a", nil), backend(t, "pair-b", nil))
	e.slice("pair-notready", "pair", closedPort(t), false) // skipped

	kiln := "kiln"
	ing := newIngress("main", &kiln,
		route{"foo.example", "/", networkingv1.PathTypePrefix, "web", port80()},
		route{"foo.example", "/api", networkingv1.PathTypePrefix, "api", networkingv1.ServiceBackendPort{Name: "http"}},
		route{"foo.example", "/api/exact", networkingv1.PathTypeExact, "exact", port80()},
		route{"*.wild.example", "/", networkingv1.PathTypeImplementationSpecific, "api", port80()},
		route{"empty.example", "/", networkingv1.PathTypePrefix, "empty", port80()},
		route{"dead.example", "/", networkingv1.PathTypePrefix, "dead", port80()},
		route{"missing.example", "/", networkingv1.PathTypePrefix, "no-such-service", port80()},
		route{"badport.example", "/", networkingv1.PathTypePrefix, "web", networkingv1.ServiceBackendPort{Number: 81}},
		route{"pair.example", "/", networkingv1.PathTypePrefix, "pair", port80()},
	)
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("http://foo.example/", 200, "web host=foo.example path=/ xff=127.0.0.1 proto=http fhost=foo.example")
	for _, tc := range []struct{ url, want string }{
		{"http://foo.example/other/x", "web "},
		{"http://FOO.example:8080/api", "api "},       // named port, host case and port
		{"http://foo.example/api/v1", "api "},         // element-wise prefix
		{"http://foo.example/apiary", "web "},         // not an element prefix
		{"http://foo.example/api/exact", "exact "},    // Exact beats Prefix
		{"http://foo.example/api/exact/more", "api "}, // Exact is exact
		{"http://x.wild.example/y", "api host=x.wild.example"},
	} {
		if code, body, err := e.get(tc.url, nil); err != nil || code != 200 || !strings.HasPrefix(body, tc.want) {
			t.Errorf("GET %s = %d %q %v, want 200 %q", tc.url, code, body, err, tc.want)
		}
	}
	for _, tc := range []struct {
		url  string
		code int
	}{
		{"http://other.example/", 404},
		{"http://a.b.wild.example/", 404}, // a wildcard is one label
		{"http://empty.example/", 503},
		{"http://missing.example/", 503}, // a bad backend breaks nothing else
		{"http://badport.example/", 503},
		{"http://dead.example/", 502},
	} {
		if code, body, err := e.get(tc.url, nil); err != nil || code != tc.code {
			t.Errorf("GET %s = %d %q %v, want %d", tc.url, code, body, err, tc.code)
		}
	}
	// Round robin over the ready endpoints only.
	seen := map[string]int{}
	for range 10 {
		code, body, err := e.get("http://pair.example/", nil)
		if err != nil || code != 200 {
			t.Fatalf("GET pair.example = %d %q %v", code, body, err)
		}
		seen[strings.Fields(body)[0]]++
	}
	if seen["pair-a"] != 5 || seen["pair-b"] != 5 {
		t.Errorf("round robin over two endpoints, 10 requests: %v", seen)
	}

	// An update re-routes without a restart; a default backend takes
	// what no rule matches.
	cur, err := e.cs.NetworkingV1().Ingresses(ns).Get(ctx, "main", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "fallback"
	cur.Spec.DefaultBackend = &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "exact", Port: port80()}}
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("http://foo.example/", 200, "fallback ")
	e.expect("http://other.example/", 200, "exact ")

	// Without a class it is the default class's, which admission sets.
	plain, err := e.cs.NetworkingV1().Ingresses(ns).Create(ctx, newIngress("plain", nil,
		route{"plain.example", "/", networkingv1.PathTypePrefix, "web", port80()}), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := plain.Spec.IngressClassName; c == nil || *c != "kiln" {
		t.Errorf("ingressClassName after create = %v, want kiln (the default class)", c)
	}
	e.expect("http://plain.example/", 200, "web ")

	// Another controller's class is not served.
	if _, err := e.cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	other := "other"
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(ctx, newIngress("theirs", &other,
		route{"theirs.example", "/", networkingv1.PathTypePrefix, "web", port80()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The Ingress created after it is in the controller's cache once
	// plain2 routes.
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(ctx, newIngress("plain2", nil,
		route{"plain2.example", "/", networkingv1.PathTypePrefix, "web", port80()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("http://plain2.example/", 200, "web ")
	// theirs.example falls to main's default backend, not to web.
	if code, body, err := e.get("http://theirs.example/", nil); err != nil || code != 200 || !strings.HasPrefix(body, "exact ") {
		t.Errorf("GET theirs.example = %d %q %v, want main's default backend: another class's Ingress was served", code, body, err)
	}

	// Deleting an Ingress removes its routes.
	if err := e.cs.NetworkingV1().Ingresses(ns).Delete(ctx, "main", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("http://foo.example/", 404, "404 page not found")
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return int32(p)
}

// testCA is a CA made for the test and a certificate it signs for hosts,
// as PEM.
func testCA(t *testing.T, hosts ...string) (roots *x509.CertPool, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ingress test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]},
		DNSNames: hosts, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// servedCert is the certificate the HTTPS listener presents for SNI
// name.
func (e *e2e) servedCert(name string) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.httpsAddr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestController_tls(t *testing.T) {
	e := startE2E(t)
	ctx := t.Context()
	e.service("web", backend(t, "web", nil))
	roots, certPEM, keyPEM := testCA(t, "secure.example", "*.wild.example")

	// The Ingress comes first and its Secret later: the default
	// certificate is served meanwhile, and the Secret's once it exists.
	kiln := "kiln"
	ing := newIngress("secure", &kiln,
		route{"secure.example", "/", networkingv1.PathTypePrefix, "web", port80()},
		route{"a.wild.example", "/", networkingv1.PathTypePrefix, "web", port80()},
		route{"plain.example", "/", networkingv1.PathTypePrefix, "web", port80()})
	ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"secure.example", "*.wild.example"}, SecretName: "secure-tls"}}
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last string
	eventually(t, "the default certificate for secure.example", func() bool {
		c, err := e.servedCert("secure.example")
		last = fmt.Sprint(c, err)
		return err == nil && c.Subject.CommonName == "KILN DEFAULT CERT"
	}, func() string { return last })
	// A node may not read the Secret but by name and type, as the
	// controller does, nor one no Ingress names.
	if _, err := e.node.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=secure-tls"}); !apierrors.IsForbidden(err) {
		t.Errorf("node lists the secret without a type selector: %v, want forbidden", err)
	}
	if _, err := e.node.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=other,type=kubernetes.io/tls"}); !apierrors.IsForbidden(err) {
		t.Errorf("node lists a secret no ingress names: %v, want forbidden", err)
	}

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "secure-tls", Namespace: ns}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM}}
	if _, err := e.cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"secure.example", "a.wild.example"} {
		eventually(t, "a verified HTTPS answer from "+host, func() bool {
			code, body, err := e.get("https://"+host+"/x", roots)
			last = fmt.Sprintf("%d %q %v", code, body, err)
			return err == nil && code == 200 && strings.HasPrefix(body, "web host="+host+" path=/x xff=127.0.0.1 proto=https")
		}, func() string { return last })
	}
	// A host without a TLS entry is served with the default certificate.
	c, err := e.servedCert("plain.example")
	if err != nil || c.Subject.CommonName != "KILN DEFAULT CERT" {
		t.Errorf("certificate for plain.example: %v %v, want the default", c, err)
	}
	if code, _, err := e.get("https://plain.example/", roots); err == nil {
		t.Errorf("plain.example verified against the test CA (%d), want the default certificate", code)
	}

	// Losing the Secret falls back to the default certificate.
	if err := e.cs.CoreV1().Secrets(ns).Delete(ctx, "secure-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the default certificate again", func() bool {
		c, err := e.servedCert("secure.example")
		last = fmt.Sprint(c, err)
		return err == nil && c.Subject.CommonName == "KILN DEFAULT CERT"
	}, func() string { return last })
}

func TestController_streamAndUpgrade(t *testing.T) {
	e := startE2E(t)
	release := make(chan struct{})
	e.service("web", backend(t, "web", release))
	kiln := "kiln"
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(t.Context(), newIngress("web", &kiln,
		route{"web.example", "/", networkingv1.PathTypePrefix, "web", port80()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.expect("http://web.example/", 200, "web ")

	// Streaming: the first line arrives while the backend still holds
	// the response open.
	conn, err := net.DialTimeout("tcp", e.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /stream HTTP/1.1\r\nHost: web.example\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first streamed line = %q, %v (buffered until the end?)", line, err)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(rest), "second") {
		t.Errorf("rest of the stream = %q, %v", rest, err)
	}
	resp.Body.Close()

	// Upgrade: a WebSocket handshake passes and the connection carries
	// bytes both ways.
	ws, err := net.DialTimeout("tcp", e.httpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetDeadline(time.Now().Add(10 * time.Second))
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(ws, "GET /ws HTTP/1.1\r\nHost: web.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	wr := bufio.NewReader(ws)
	resp, err = http.ReadResponse(wr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("upgrade answer: %s %v", resp.Status, resp.Header)
	}
	fmt.Fprintf(ws, "hello\n")
	got, err := wr.ReadString('\n')
	if err != nil || got != "web echo hello\n" {
		t.Errorf("echo over the upgraded connection = %q, %v", got, err)
	}
}

func TestController_status(t *testing.T) {
	e := startE2E(t)
	ctx := t.Context()
	e.service("web", backend(t, "web", nil))
	kiln := "kiln"
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(ctx, newIngress("web", &kiln,
		route{"web.example", "/", networkingv1.PathTypePrefix, "web", port80()}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Another node's entry, added as that node would (merged, retried
	// on a conflict with this one's write); it stays.
	for i := 0; ; i++ {
		ing, err := e.cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ing.Status.LoadBalancer.Ingress = append(ing.Status.LoadBalancer.Ingress, networkingv1.IngressLoadBalancerIngress{IP: "192.0.2.7"})
		_, err = e.cs.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, ing, metav1.UpdateOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) || i == 10 {
			t.Fatal(err)
		}
	}
	ips := func() []string {
		cur, err := e.cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, in := range cur.Status.LoadBalancer.Ingress {
			out = append(out, in.IP)
		}
		return out
	}
	var last []string
	eventually(t, "status with both nodes", func() bool {
		last = ips()
		return strings.Join(last, ",") == "127.0.0.1,192.0.2.7"
	}, func() string { return fmt.Sprint(last) })

	// Moved to a class this controller does not serve: its own address
	// goes, the other node's stays.
	if _, err := e.cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Spec: networkingv1.IngressClassSpec{Controller: "example.com/other"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cur, err := e.cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other := "other"
	cur.Spec.IngressClassName = &other
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "own address removed", func() bool {
		last = ips()
		return strings.Join(last, ",") == "192.0.2.7"
	}, func() string { return fmt.Sprint(last) })
	e.expect("http://web.example/", 404, "")
}

// TestController_kubectl is a user's path: `kubectl create ingress`, a
// request by host, and the address in `kubectl get ingress`.
func TestController_kubectl(t *testing.T) {
	kubectl := testenv.Kubectl(t)
	e := startE2E(t)
	e.service("svc", backend(t, "svc", nil))
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), kubectl, append([]string{"--kubeconfig", e.api.Kubeconfig}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("create", "ingress", "demo", "--rule=foo.example/*=svc:80")
	e.expect("http://foo.example/some/path", 200, "svc host=foo.example path=/some/path")
	var out string
	eventually(t, "kubectl get ingress to show the address", func() bool {
		out = run("get", "ingress", "demo")
		return strings.Contains(out, "127.0.0.1")
	}, func() string { return out })
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME CLASS HOSTS ADDRESS PORTS AGE" {
		t.Fatalf("kubectl get ingress:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) != 6 || f[0] != "demo" || f[1] != "kiln" || f[2] != "foo.example" || f[3] != "127.0.0.1" || f[4] != "80" {
		t.Errorf("kubectl get ingress row: %q", lines[1])
	}
}

// TestController_portTaken: an address another program holds does not
// stop Run (the rest of the node keeps running); the listener opens once
// the address is free.
func TestController_portTaken(t *testing.T) {
	api := testenv.Start(t, testenv.Options{})
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := holder.Addr().String()
	c, err := ingress.New(ingress.Config{
		Client: api.Clientset, Listen: addr, ListenRetry: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while its port was taken", err)
	case <-time.After(300 * time.Millisecond):
	}
	holder.Close()
	select {
	case <-c.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not serving 10s after the port was freed")
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / with no Ingress: %d, want 404", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
