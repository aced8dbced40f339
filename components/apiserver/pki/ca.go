package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// File names in the TLS directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

const (
	// caValidity is how long a generated CA is valid.
	caValidity = 10 * 365 * 24 * time.Hour
	// backdate is subtracted from NotBefore so a peer whose clock is a
	// little behind still accepts a certificate issued just now.
	backdate = 5 * time.Minute
)

// CA is the cluster certificate authority. Its methods only read it, so one
// CA may be used from several goroutines.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
	// CertPEM is Cert PEM-encoded, as written to ca.crt and embedded in
	// kubeconfigs.
	CertPEM []byte
}

// EnsureCA loads dir/ca.crt and dir/ca.key, or creates them when neither
// exists: an ECDSA P-256 key and a self-signed certificate valid for 10
// years with CN "kiln-ca@<unix time>". dir is created with mode 0700, ca.crt
// is written 0644 and ca.key 0600.
//
// An existing CA is never replaced: one file without the other, files that
// do not parse, a key that does not match the certificate, a certificate
// that is not a CA, or an expired one is an error, because a new CA would
// silently invalidate every certificate and join token issued before.
func EnsureCA(dir string) (*CA, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	// MkdirAll leaves an existing directory's mode alone; the CA key's
	// directory must not be listable by others whoever created it.
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	haveCert, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	haveKey, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case haveCert && haveKey:
		return loadCA(certPath, keyPath)
	case haveCert:
		return nil, fmt.Errorf("%s exists but %s does not; restore it, or remove both to create a new CA", certPath, keyPath)
	case haveKey:
		return nil, fmt.Errorf("%s exists but %s does not; restore it, or remove both to create a new CA", keyPath, certPath)
	}
	return createCA(certPath, keyPath)
}

func loadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read ca certificate: %w", err)
	}
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read ca key: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("%s: not a CA certificate", certPath)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%s: key usage does not allow signing certificates", certPath)
	}
	if !keyMatches(cert, key) {
		return nil, fmt.Errorf("%s does not match %s", keyPath, certPath)
	}
	if now := time.Now(); now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%s expired at %s; remove %s and %s to create a new CA",
			certPath, cert.NotAfter.UTC().Format(time.RFC3339), certPath, keyPath)
	}
	return &CA{Cert: cert, Key: key, CertPEM: encodeCertPEM(cert.Raw)}, nil
}

func createCA(certPath, keyPath string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("kiln-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaf certificates only.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse ca certificate: %w", err)
	}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	certPEM := encodeCertPEM(der)
	// Key first: a crash in between leaves only ca.key, which EnsureCA
	// reports instead of pairing it with a certificate it never signed.
	if err := WriteFileAtomic(keyPath, keyPEM, secretMode); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(certPath, certPEM, certMode); err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// Hash returns "sha256:<hex>" of the CA certificate's SubjectPublicKeyInfo,
// the format of kubeadm's --discovery-token-ca-cert-hash: a joining agent
// compares it with the CA the server presents before sending credentials.
// Hashing the public key rather than the whole certificate keeps the pin
// valid across a re-signed CA certificate with the same key.
func (ca *CA) Hash() string { return CertHash(ca.Cert) }

// CertHash is CA.Hash for any certificate: what a joining agent computes
// for the CA a server presents.
func CertHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newSerial returns a random 128-bit certificate serial number.
func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial, nil
}
