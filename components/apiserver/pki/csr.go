package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// DefaultNodeCertValidity is how long SignClientCSR and SignServingCSR
// certificates are valid unless told otherwise (at most the CA's life).
const DefaultNodeCertValidity = 365 * 24 * time.Hour

// NewCSR creates an ECDSA P-256 key and a certificate signing request for
// it with common name cn, for an agent to send to the join endpoint: the
// key stays with the agent. It returns the PEM PKCS#8 key and PEM CSR.
func NewCSR(cn string) (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate request: %w", err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return keyPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// SignClientCSR issues a client certificate for the CSR's public key with
// CN user and O groups. Whatever subject, names or extensions the CSR
// asks for are ignored: the signer decides who the key is. validity 0
// means DefaultNodeCertValidity; it is capped at the CA's expiry.
func (ca *CA) SignClientCSR(csrPEM []byte, user string, groups []string, validity time.Duration) ([]byte, error) {
	if user == "" {
		return nil, errors.New("client certificate: user is required")
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	return ca.sign(csr.PublicKey, pkix.Name{CommonName: user, Organization: groups}, nil, nil,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, orDefault(validity))
}

// SignServingCSR issues a serving certificate for the CSR's public key,
// valid for hosts (IP addresses or DNS names) with CN name. As with
// SignClientCSR, the CSR's own subject and names are ignored.
func (ca *CA) SignServingCSR(csrPEM []byte, name string, hosts []string, validity time.Duration) ([]byte, error) {
	if name == "" {
		return nil, errors.New("serving certificate: name is required")
	}
	ips, dnsNames, err := parseHosts(hosts)
	if err != nil {
		return nil, err
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	return ca.sign(csr.PublicKey, pkix.Name{CommonName: name}, ips, dnsNames,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, orDefault(validity))
}

func orDefault(validity time.Duration) time.Duration {
	if validity <= 0 {
		return DefaultNodeCertValidity
	}
	return validity
}

// parseCSR decodes a PEM CSR and checks its self-signature, which proves
// the requester holds the private key.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(csrPEM)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("certificate request: no CERTIFICATE REQUEST PEM block")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: bad signature: %w", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("certificate request: ECDSA curve %s not accepted, want P-256 or P-384", k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("certificate request: %T keys not accepted, want ECDSA", csr.PublicKey)
	}
	return csr, nil
}
