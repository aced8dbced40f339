package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
)

// Bootstrap is what servers sharing one external datastore must have in
// common before their API servers start: the cluster CA (so every server's
// certificate and every agent's pin chain to one root), the admin token
// (so the in-process clients of one server are accepted by another) and
// the join secret. The first server seals it into the datastore and the
// others open it with the same join secret, as k3s does with its
// bootstrap data.
type Bootstrap struct {
	CACertPEM  []byte `json:"caCert"`
	CAKeyPEM   []byte `json:"caKey"`
	AdminToken string `json:"adminToken"`
	JoinSecret string `json:"joinSecret"`
}

// ErrBootstrapSecret is returned by OpenBootstrap when the data was sealed
// with another secret (or was altered).
var ErrBootstrapSecret = errors.New("datastore bootstrap data cannot be decrypted with this token")

const (
	// bootstrapVersion names the envelope format and the KDF parameters.
	bootstrapVersion = "kiln-bootstrap-v1"
	// bootstrapIterations of PBKDF2-SHA256: the secret may be chosen by a
	// person, so the key derivation is deliberately slow (about 30 ms),
	// and each server pays it once per start.
	bootstrapIterations = 100_000
	saltBytes           = 16
)

// sealed is the envelope stored in the datastore. The salt and the nonce
// are not secret; the version is authenticated as additional data.
type sealed struct {
	Version    string `json:"version"`
	Salt       []byte `json:"salt"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// SealBootstrap encrypts b with AES-256-GCM under a key derived from
// secret by PBKDF2-SHA256 with a fresh random salt.
func SealBootstrap(secret string, b Bootstrap) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("seal bootstrap: empty secret")
	}
	plain, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("seal bootstrap: %w", err)
	}
	salt := make([]byte, saltBytes)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("seal bootstrap: %w", err)
	}
	aead, err := bootstrapAEAD(secret, salt)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal bootstrap: %w", err)
	}
	return json.Marshal(sealed{
		Version:    bootstrapVersion,
		Salt:       salt,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plain, []byte(bootstrapVersion)),
	})
}

// OpenBootstrap decrypts data sealed by SealBootstrap. A wrong secret is
// ErrBootstrapSecret; data that is not an envelope at all is another
// error. Neither error contains the secret or the data.
func OpenBootstrap(secret string, data []byte) (Bootstrap, error) {
	var s sealed
	if err := json.Unmarshal(data, &s); err != nil {
		return Bootstrap{}, fmt.Errorf("open bootstrap: not a bootstrap envelope: %w", err)
	}
	if s.Version != bootstrapVersion {
		return Bootstrap{}, fmt.Errorf("open bootstrap: unknown version %q (want %q)", s.Version, bootstrapVersion)
	}
	aead, err := bootstrapAEAD(secret, s.Salt)
	if err != nil {
		return Bootstrap{}, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return Bootstrap{}, errors.New("open bootstrap: bad nonce size")
	}
	plain, err := aead.Open(nil, s.Nonce, s.Ciphertext, []byte(bootstrapVersion))
	if err != nil {
		return Bootstrap{}, ErrBootstrapSecret
	}
	var b Bootstrap
	if err := json.Unmarshal(plain, &b); err != nil {
		return Bootstrap{}, fmt.Errorf("open bootstrap: %w", err)
	}
	return b, nil
}

func bootstrapAEAD(secret string, salt []byte) (cipher.AEAD, error) {
	if len(salt) != saltBytes {
		return nil, errors.New("bootstrap: bad salt size")
	}
	key, err := pbkdf2.Key(sha256.New, secret, salt, bootstrapIterations, 32)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return cipher.NewGCM(block)
}

// KeyPEM returns the CA's private key PEM-encoded (PKCS#8), as
// SealBootstrap needs it.
func (ca *CA) KeyPEM() ([]byte, error) { return encodeKeyPEM(ca.Key) }

// InstallCA puts the CA certPEM/keyPEM into dir (ca.crt, ca.key) for
// EnsureCA to load, unless dir already holds it. It refuses to replace a
// different CA in dir: every certificate and join token made from that one
// would stop working, so the user must decide (remove the files, or give
// this server its own datastore). The pair is checked before anything is
// written.
func InstallCA(dir string, certPEM, keyPEM []byte) error {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return fmt.Errorf("install ca: certificate: %w", err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return fmt.Errorf("install ca: key: %w", err)
	}
	if !cert.IsCA || !keyMatches(cert, key) {
		return errors.New("install ca: not a CA certificate and its key")
	}
	if err := ensureDir(dir); err != nil {
		return err
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	haveCert, err := exists(certPath)
	if err != nil {
		return err
	}
	haveKey, err := exists(keyPath)
	if err != nil {
		return err
	}
	if haveCert || haveKey {
		local, err := EnsureCA(dir)
		if err != nil {
			return err
		}
		if !bytes.Equal(local.Cert.Raw, cert.Raw) {
			return fmt.Errorf("%s holds a different CA (%s) than the datastore's (%s); remove %s and %s to use the datastore's, or use another datastore",
				dir, local.Cert.Subject.CommonName, cert.Subject.CommonName, certPath, keyPath)
		}
		return nil
	}
	// Key first, as createCA does.
	if err := WriteFileAtomic(keyPath, keyPEM, secretMode); err != nil {
		return err
	}
	return WriteFileAtomic(certPath, encodeCertPEM(cert.Raw), certMode)
}

// WriteToken writes token to path (mode 0600) for EnsureToken to read,
// replacing what was there.
func WriteToken(path, token string) error {
	if token == "" {
		return errors.New("write token: empty token")
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return err
	}
	return WriteFileAtomic(path, []byte(token+"\n"), secretMode)
}
