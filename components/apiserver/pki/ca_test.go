package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureCA_createsThenReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca1, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := ca1.Cert
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("not a signing CA: IsCA=%v KeyUsage=%v", c.IsCA, c.KeyUsage)
	}
	if !strings.HasPrefix(c.Subject.CommonName, "kiln-ca@") {
		t.Errorf("CN = %q, want kiln-ca@<unix time>", c.Subject.CommonName)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 10*365*24*time.Hour {
		t.Errorf("CA valid for %v, want 10 years", life)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if got, _ := ParseCertPEM(ca1.CertPEM); got == nil || !bytes.Equal(got.Raw, c.Raw) {
		t.Errorf("CertPEM does not hold Cert")
	}

	ca2, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.Cert.Raw, ca2.Cert.Raw) || !bytes.Equal(ca1.CertPEM, ca2.CertPEM) {
		t.Errorf("second EnsureCA returned a different certificate")
	}
	if !keyMatches(ca2.Cert, ca2.Key) {
		t.Errorf("reloaded key does not match")
	}
	if ca1.Hash() != ca2.Hash() {
		t.Errorf("Hash changed across reload")
	}
}

func TestEnsureCA_fileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	// A directory created by someone else with a looser mode is tightened.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCA(dir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{
		dir:                          0o700,
		filepath.Join(dir, "ca.crt"): 0o644,
		filepath.Join(dir, "ca.key"): 0o600,
	} {
		if got := fileMode(t, path); got != want {
			t.Errorf("mode of %s = %o, want %o", path, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("tls dir holds %d entries, want ca.crt and ca.key only", len(entries))
	}
}

func TestEnsureCA_refusesToReplace(t *testing.T) {
	good := t.TempDir()
	ca, err := EnsureCA(good)
	if err != nil {
		t.Fatal(err)
	}
	goodCert, _ := os.ReadFile(filepath.Join(good, "ca.crt"))
	goodKey, _ := os.ReadFile(filepath.Join(good, "ca.key"))
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherKeyPEM, err := encodeKeyPEM(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM, leafKeyPEM, err := ca.IssueClient("someone", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expiredPEM, expiredKeyPEM := selfSignedCA(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))

	tests := []struct {
		name      string
		cert, key []byte // nil means the file is absent
		wantErr   string
	}{
		{name: "certificate without key", cert: goodCert, wantErr: "ca.key does not"},
		{name: "key without certificate", key: goodKey, wantErr: "ca.crt does not"},
		{name: "garbage certificate", cert: []byte("garbage"), key: goodKey, wantErr: "no CERTIFICATE"},
		{name: "garbage key", cert: goodCert, key: []byte("garbage"), wantErr: "no private key"},
		{name: "mismatched key", cert: goodCert, key: otherKeyPEM, wantErr: "does not match"},
		{name: "not a CA", cert: leafPEM, key: leafKeyPEM, wantErr: "not a CA certificate"},
		{name: "expired", cert: expiredPEM, key: expiredKeyPEM, wantErr: "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range map[string][]byte{"ca.crt": tc.cert, "ca.key": tc.key} {
				if content != nil {
					if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			_, err := EnsureCA(dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("EnsureCA error = %v, want %q", err, tc.wantErr)
			}
			for name, content := range map[string][]byte{"ca.crt": tc.cert, "ca.key": tc.key} {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if content == nil {
					if err == nil {
						t.Errorf("%s was created", name)
					}
					continue
				}
				if !bytes.Equal(got, content) {
					t.Errorf("%s was modified", name)
				}
			}
		})
	}
}

// A CA brought by the user with a SEC 1 ("EC PRIVATE KEY") key loads.
func TestEnsureCA_loadsExistingSEC1Key(t *testing.T) {
	certPEM, keyPEM := selfSignedCA(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := EnsureCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Cert.Subject.CommonName != "user-ca" {
		t.Errorf("loaded CN %q, want the user's CA", ca.Cert.Subject.CommonName)
	}
}

func TestCA_Hash(t *testing.T) {
	ca, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo)
	want := "sha256:" + hex.EncodeToString(sum[:])
	if got := ca.Hash(); got != want {
		t.Errorf("Hash = %q, want %q", got, want)
	}
	if len(ca.Hash()) != len("sha256:")+64 {
		t.Errorf("Hash %q has the wrong length", ca.Hash())
	}
	other, err := EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if other.Hash() == ca.Hash() {
		t.Errorf("two CAs have the same hash")
	}
}

// selfSignedCA makes a CA certificate with CN "user-ca" and a SEC 1 key.
func selfSignedCA(t *testing.T, notBefore, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "user-ca"},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return encodeCertPEM(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
