package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	c, err := ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCA_SignClientCSR_subjectIsTheSigners(t *testing.T) {
	ca := newCA(t)
	// The CSR asks to be an admin; the certificate says what the signer says.
	keyPEM, csrPEM, err := NewCSR("admin")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignClientCSR(csrPEM, "system:node:a", []string{"system:nodes"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if c.Subject.CommonName != "system:node:a" || !slices.Equal(c.Subject.Organization, []string{"system:nodes"}) {
		t.Fatalf("subject = %v, want CN system:node:a O system:nodes", c.Subject)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: caPool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("verify as client: %v", err)
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: caPool(ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("a client certificate verifies for server auth")
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < DefaultNodeCertValidity || life > DefaultNodeCertValidity+time.Hour {
		t.Fatalf("validity %s, want about %s", life, DefaultNodeCertValidity)
	}
	// The key NewCSR returned is the certificate's.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("key does not match certificate: %v", err)
	}
}

func TestCA_SignServingCSR_hosts(t *testing.T) {
	ca := newCA(t)
	_, csrPEM, err := NewCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignServingCSR(csrPEM, "system:node:a", []string{"10.77.0.2", "a"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	for _, host := range []string{"10.77.0.2", "a"} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: caPool(ca), DNSName: host, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(net.ParseIP("10.77.0.2")) {
		t.Errorf("IP SANs %v", c.IPAddresses)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life > time.Hour+backdate {
		t.Errorf("validity %s, want 1h", life)
	}
	if _, err := ca.SignServingCSR(csrPEM, "n", []string{"not a host"}, 0); err == nil {
		t.Error("a bad host was accepted")
	}
}

func TestCA_SignCSR_capsAtCAExpiry(t *testing.T) {
	ca := newCA(t)
	_, csrPEM, err := NewCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignClientCSR(csrPEM, "u", nil, 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c := parseCert(t, certPEM); c.NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("NotAfter %s after the CA's %s", c.NotAfter, ca.Cert.NotAfter)
	}
}

func TestCA_SignCSR_refusesBadRequests(t *testing.T) {
	ca := newCA(t)
	_, good, err := NewCSR("x")
	if err != nil {
		t.Fatal(err)
	}
	// A CSR whose signature does not match its key: flip a byte of the
	// signature, the last bytes of the DER.
	block, _ := pem.Decode(good)
	der := slices.Clone(block.Bytes)
	der[len(der)-3] ^= 0xff
	badSig := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "r"}}, rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224DER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "p"}}, p224)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		csr  []byte
		want string
	}{
		{"not PEM", []byte("hello"), "no CERTIFICATE REQUEST PEM block"},
		{"a certificate", ca.CertPEM, "no CERTIFICATE REQUEST PEM block"},
		{"bad signature", badSig, "certificate request"},
		{"rsa", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: rsaDER}), "keys not accepted"},
		{"p224", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: p224DER}), "curve P-224 not accepted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ca.SignClientCSR(tc.csr, "u", nil, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SignClientCSR error = %v, want %q", err, tc.want)
			}
			if _, err := ca.SignServingCSR(tc.csr, "n", []string{"127.0.0.1"}, 0); err == nil {
				t.Fatal("SignServingCSR accepted it")
			}
		})
	}
}
