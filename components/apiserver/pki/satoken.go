package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
)

// ServiceAccountKey is the key that signs service account tokens. It is
// derived from the CA's key rather than kept in a file of its own: every
// server of a cluster holds the same CA key (InstallCA), so every server
// signs and verifies the same tokens with nothing more to hand around, and
// a new CA, which voids every credential anyway, voids the tokens too.
// The CA key itself never signs a token.
func (ca *CA) ServiceAccountKey() (*ecdsa.PrivateKey, error) {
	der, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}
	// A P-256 scalar must be below the group order; a 32-byte string is
	// not, about once in 2^32 tries. The next counter then decides, the
	// same on every server.
	for i := range 16 {
		seed, err := hkdf.Key(sha256.New, der, nil, fmt.Sprintf("kiln service account token signing key %d", i), 32)
		if err != nil {
			return nil, fmt.Errorf("service account key: %w", err)
		}
		if key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed); err == nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("service account key: no valid P-256 scalar derived")
}
