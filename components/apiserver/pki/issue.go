package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	// servingValidity is how long a serving certificate is issued for.
	servingValidity = 365 * 24 * time.Hour
	// renewBefore: a serving certificate expiring sooner than this is
	// issued again at the next start.
	renewBefore = 30 * 24 * time.Hour
)

// EnsureServing returns the serving certificate dir/name.crt with key
// dir/name.key, reusing the files when they are a matching pair, signed by
// ca, valid now and for at least 30 more days, for server auth, and cover
// every host (more hosts are fine). Otherwise it issues a new one, valid for
// a year (at most until the CA expires) with hosts as IP or DNS subject
// alternative names, and writes it: the key 0600, the certificate 0644.
//
// name is a file name, not a path, and not "ca". hosts are IP addresses
// ("127.0.0.1", "::1") or DNS names ("localhost", "*.kiln.local"). Calls for
// the same name must not run concurrently.
func (ca *CA) EnsureServing(dir, name string, hosts []string) (tls.Certificate, error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." || name+".crt" == CACertFile {
		return tls.Certificate{}, fmt.Errorf("serving certificate name %q: want a plain file name other than %q", name, "ca")
	}
	ips, dnsNames, err := parseHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := ensureDir(dir); err != nil {
		return tls.Certificate{}, err
	}
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")

	if certPEM, keyPEM, ok := ca.reusable(certPath, keyPath, ips, dnsNames); ok {
		return keyPair(certPEM, keyPEM)
	}

	certPEM, keyPEM, err := ca.issue(pkix.Name{CommonName: name}, ips, dnsNames,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, servingValidity)
	if err != nil {
		return tls.Certificate{}, err
	}
	// Key first: a crash in between leaves a new key with the old
	// certificate, which reusable rejects as a mismatched pair next time.
	if err := WriteFileAtomic(keyPath, keyPEM, secretMode); err != nil {
		return tls.Certificate{}, err
	}
	if err := WriteFileAtomic(certPath, certPEM, certMode); err != nil {
		return tls.Certificate{}, err
	}
	return keyPair(certPEM, keyPEM)
}

func keyPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("load serving certificate: %w", err)
	}
	return c, nil
}

// reusable reads an existing pair and reports whether it can be served
// again. Any problem, including unreadable files, means "issue a new one":
// serving certificates are derived data.
func (ca *CA) reusable(certPath, keyPath string, ips []net.IP, dnsNames []string) (certPEM, keyPEM []byte, ok bool) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, false
	}
	keyPEM, err = os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, false
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, nil, false
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil || !keyMatches(cert, key) {
		return nil, nil, false
	}
	now := time.Now()
	if now.Before(cert.NotBefore) || now.Add(renewBefore).After(cert.NotAfter) {
		return nil, nil, false
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return nil, nil, false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return nil, nil, false
		}
	}
	for _, n := range dnsNames {
		if !slices.ContainsFunc(cert.DNSNames, func(have string) bool { return strings.EqualFold(have, n) }) {
			return nil, nil, false
		}
	}
	return certPEM, keyPEM, true
}

// IssueClient issues a client certificate for TLS client auth with CN user
// and O groups (how Kubernetes reads a user and its groups from a
// certificate), valid for validity (at most until the CA expires). It
// returns the PEM certificate and PEM PKCS#8 ECDSA P-256 key; nothing is
// written to disk.
func (ca *CA) IssueClient(user string, groups []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if user == "" {
		return nil, nil, errors.New("client certificate: user is required")
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("client certificate: validity must be positive, got %s", validity)
	}
	return ca.issue(pkix.Name{CommonName: user, Organization: groups}, nil, nil,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, validity)
}

// issue creates a new key and a leaf certificate for it signed by ca.
func (ca *CA) issue(subject pkix.Name, ips []net.IP, dnsNames []string, usage []x509.ExtKeyUsage, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	certPEM, err = ca.sign(key.Public(), subject, ips, dnsNames, usage, validity)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}

// sign issues a leaf certificate for pub signed by ca. A CSR's public key
// comes here too (csr.go), so the agent's private key never leaves it.
func (ca *CA) sign(pub crypto.PublicKey, subject pkix.Name, ips []net.IP, dnsNames []string, usage []x509.ExtKeyUsage, validity time.Duration) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
		IPAddresses:           ips,
		DNSNames:              dnsNames,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", subject.CommonName, err)
	}
	return encodeCertPEM(der), nil
}

// parseHosts splits hosts into IP and DNS SANs, dropping duplicates.
func parseHosts(hosts []string) ([]net.IP, []string, error) {
	if len(hosts) == 0 {
		return nil, nil, errors.New("serving certificate: at least one host is required")
	}
	var ips []net.IP
	var names []string
	var errs []error
	for i, h := range hosts {
		h = strings.TrimSpace(h)
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(h)
		if !validDNSName(h) {
			errs = append(errs, fmt.Errorf("hosts[%d]: %q is not an IP address or DNS name", i, hosts[i]))
			continue
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("serving certificate: %w", errors.Join(errs...))
	}
	return ips, names, nil
}

// validDNSName accepts host names as crypto/x509 does when verifying: dot
// separated labels of letters, digits, "-" and "_" (not valid DNS, but
// common in machine host names, which cmd passes in), optionally starting
// with a "*" label. Ports, paths and blanks are rejected.
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i, label := range strings.Split(h, ".") {
		if label == "*" && i == 0 && strings.Contains(h, ".") {
			continue
		}
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}
