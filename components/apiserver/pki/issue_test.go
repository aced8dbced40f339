package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newCA(t *testing.T) *CA {
	t.Helper()
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func caPool(ca *CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

func serialOf(t *testing.T, c tls.Certificate) string {
	t.Helper()
	if c.Leaf == nil {
		t.Fatal("tls.Certificate without Leaf")
	}
	return c.Leaf.SerialNumber.String()
}

func TestCA_EnsureServing_verifiesForEachHost(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	hosts := []string{"127.0.0.1", "localhost", "::1", "kiln.example.com", "my_host"}
	cert, err := ca.EnsureServing(dir, "apiserver", hosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		t.Run(h, func(t *testing.T) {
			if _, err := cert.Leaf.Verify(x509.VerifyOptions{
				DNSName:   h,
				Roots:     caPool(ca),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("verify for %s: %v", h, err)
			}
		})
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: caPool(ca)}); err == nil {
		t.Errorf("certificate verifies for a host it was not issued for")
	}
	if !slices.Equal(cert.Leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("ExtKeyUsage = %v, want server auth only", cert.Leaf.ExtKeyUsage)
	}
	if life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); life < 365*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("serving certificate valid for %v, want a year", life)
	}
	if got := fileMode(t, filepath.Join(dir, "apiserver.key")); got != 0o600 {
		t.Errorf("key mode %o, want 600", got)
	}
	if got := fileMode(t, filepath.Join(dir, "apiserver.crt")); got != 0o644 {
		t.Errorf("cert mode %o, want 644", got)
	}
}

// A real TLS handshake, as kubectl does it, against 127.0.0.1 and localhost.
func TestCA_EnsureServing_tlsHandshake(t *testing.T) {
	ca := newCA(t)
	cert, err := ca.EnsureServing(t.TempDir(), "apiserver", []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: caPool(ca), MinVersion: tls.VersionTLS12}}}
	t.Cleanup(client.CloseIdleConnections)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+net.JoinHostPort(host, port)+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("GET via %s: %v", host, err)
			}
			defer func() { _ = resp.Body.Close() }()
			if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
				t.Errorf("body %q", b)
			}
		})
	}
}

func TestCA_EnsureServing_reuseAndRenewal(t *testing.T) {
	ca := newCA(t)
	hosts := []string{"127.0.0.1", "localhost"}

	tests := []struct {
		name      string
		prepare   func(t *testing.T, dir string) // after a first EnsureServing with hosts
		hosts     []string
		wantReuse bool
	}{
		{name: "same hosts reuse", hosts: hosts, wantReuse: true},
		{name: "fewer hosts reuse", hosts: []string{"localhost"}, wantReuse: true},
		{name: "same hosts in other order and case reuse", hosts: []string{"LOCALHOST", "127.0.0.1", "localhost"}, wantReuse: true},
		{name: "new IP host regenerates", hosts: []string{"127.0.0.1", "localhost", "10.0.0.5"}},
		{name: "new DNS host regenerates", hosts: []string{"127.0.0.1", "localhost", "kiln.local"}},
		{name: "expiring within 30 days regenerates", hosts: hosts, prepare: func(t *testing.T, dir string) {
			writePair(t, dir, "apiserver", ca, hosts, 29*24*time.Hour)
		}},
		{name: "valid for 31 days reuses", hosts: hosts, wantReuse: true, prepare: func(t *testing.T, dir string) {
			writePair(t, dir, "apiserver", ca, hosts, 31*24*time.Hour)
		}},
		{name: "other CA regenerates", hosts: hosts, prepare: func(t *testing.T, dir string) {
			writePair(t, dir, "apiserver", newCA(t), hosts, servingValidity)
		}},
		{name: "mismatched key regenerates", hosts: hosts, prepare: func(t *testing.T, dir string) {
			_, keyPEM, err := ca.IssueClient("x", nil, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "apiserver.key"), keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "garbage certificate regenerates", hosts: hosts, prepare: func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "apiserver.crt"), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "missing key regenerates", hosts: hosts, prepare: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "apiserver.key")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := ca.EnsureServing(dir, "apiserver", hosts)
			if err != nil {
				t.Fatal(err)
			}
			before := serialOf(t, first)
			if tc.prepare != nil {
				tc.prepare(t, dir)
				before = ""
				if c, err := tls.LoadX509KeyPair(filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key")); err == nil {
					before = c.Leaf.SerialNumber.String()
				}
			}
			got, err := ca.EnsureServing(dir, "apiserver", tc.hosts)
			if err != nil {
				t.Fatal(err)
			}
			if reused := serialOf(t, got) == before; reused != tc.wantReuse {
				t.Errorf("reused = %v, want %v", reused, tc.wantReuse)
			}
			for _, h := range tc.hosts {
				if err := got.Leaf.VerifyHostname(h); err != nil {
					t.Errorf("result does not cover %s: %v", h, err)
				}
			}
			if _, err := got.Leaf.Verify(x509.VerifyOptions{Roots: caPool(ca)}); err != nil {
				t.Errorf("result does not chain to the CA: %v", err)
			}
			// What is on disk is what was returned.
			onDisk, err := tls.LoadX509KeyPair(filepath.Join(dir, "apiserver.crt"), filepath.Join(dir, "apiserver.key"))
			if err != nil {
				t.Fatal(err)
			}
			if serialOf(t, onDisk) != serialOf(t, got) {
				t.Errorf("files on disk differ from the returned certificate")
			}
		})
	}
}

// writePair writes a serving pair for hosts signed by ca, valid for validity.
func writePair(t *testing.T, dir, name string, ca *CA, hosts []string, validity time.Duration) {
	t.Helper()
	ips, dns, err := parseHosts(hosts)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.issue(pkix.Name{CommonName: name}, ips, dns, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, validity)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCA_EnsureServing_errors(t *testing.T) {
	ca := newCA(t)
	tests := []struct {
		name, certName string
		hosts          []string
		wantErr        string
	}{
		{name: "empty name", certName: "", hosts: []string{"localhost"}, wantErr: "name"},
		{name: "path as name", certName: "../x", hosts: []string{"localhost"}, wantErr: `name "../x"`},
		{name: "ca as name", certName: "ca", hosts: []string{"localhost"}, wantErr: `name "ca"`},
		{name: "no hosts", certName: "s", hosts: nil, wantErr: "at least one host"},
		{name: "host with port", certName: "s", hosts: []string{"localhost", "localhost:6443"}, wantErr: `hosts[1]: "localhost:6443" is not an IP address or DNS name`},
		{name: "empty host", certName: "s", hosts: []string{""}, wantErr: `hosts[0]: ""`},
		{name: "URL as host", certName: "s", hosts: []string{"https://h"}, wantErr: `hosts[0]: "https://h"`},
		{name: "bare wildcard", certName: "s", hosts: []string{"*"}, wantErr: `hosts[0]: "*"`},
		{name: "empty label", certName: "s", hosts: []string{"a..b"}, wantErr: `hosts[0]: "a..b"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := ca.EnsureServing(dir, tc.certName, tc.hosts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("EnsureServing error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseHosts(t *testing.T) {
	ips, names, err := parseHosts([]string{"127.0.0.1", "[::1]", "::1", "Localhost", "localhost", "*.kiln.local", " 10.0.0.1 ", "My_Host"})
	if err != nil {
		t.Fatal(err)
	}
	var gotIPs []string
	for _, ip := range ips {
		gotIPs = append(gotIPs, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "10.0.0.1"}; !slices.Equal(gotIPs, want) {
		t.Errorf("ips = %v, want %v", gotIPs, want)
	}
	if want := []string{"localhost", "*.kiln.local", "my_host"}; !slices.Equal(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
}

func TestCA_IssueClient(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM, err := ca.IssueClient("system:node:n1", []string{"system:nodes", "kiln:agents"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("certificate and key do not pair: %v", err)
	}
	leaf := pair.Leaf
	if leaf.Subject.CommonName != "system:node:n1" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	// DER sorts a SET OF, so the order of groups is not kept.
	if got := slices.Sorted(slices.Values(leaf.Subject.Organization)); !slices.Equal(got, []string{"kiln:agents", "system:nodes"}) {
		t.Errorf("O = %v", leaf.Subject.Organization)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: caPool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify for client auth: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: caPool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Errorf("client certificate verifies for server auth")
	}
	if leaf.IsCA {
		t.Errorf("client certificate is a CA")
	}
	if life := leaf.NotAfter.Sub(time.Now()); life > 24*time.Hour || life < 23*time.Hour {
		t.Errorf("valid for another %v, want 24h", life)
	}

	t.Run("validity capped at the CA's", func(t *testing.T) {
		c, _, err := ca.IssueClient("u", nil, 100*365*24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := ParseCertPEM(c)
		if err != nil {
			t.Fatal(err)
		}
		if leaf.NotAfter.After(ca.Cert.NotAfter) {
			t.Errorf("client certificate outlives the CA")
		}
	})
	for _, tc := range []struct {
		name     string
		user     string
		validity time.Duration
		wantErr  string
	}{
		{name: "no user", user: "", validity: time.Hour, wantErr: "user is required"},
		{name: "zero validity", user: "u", validity: 0, wantErr: "validity must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := ca.IssueClient(tc.user, nil, tc.validity); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("IssueClient error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
