package join

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"kiln.dev/kiln/components/apiserver/pki"
)

// Files in JoinConfig.Dir.
const (
	CACertFile      = "ca.crt"
	ClientCertFile  = "client.crt"
	ClientKeyFile   = "client.key"
	ServingCertFile = "kubelet.crt"
	ServingKeyFile  = "kubelet.key"
	InfoFile        = "join.json"
	// PasswordFile is the node password, made on the first join and sent
	// on every join after.
	PasswordFile = "node-password"
)

// File modes: keys for the owner only.
const (
	dirMode    os.FileMode = 0o700
	publicMode os.FileMode = 0o644
	secretMode os.FileMode = 0o600
)

// save writes the credentials: keys first and join.json last, so that
// a crash in between leaves a set load refuses, and the agent joins again.
func (c *Credentials) save(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	info, err := json.MarshalIndent(c.Info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", InfoFile, err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{ClientKeyFile, c.ClientKeyPEM, secretMode},
		{ServingKeyFile, c.servingKeyPEM, secretMode},
		{CACertFile, c.CACertPEM, publicMode},
		{ClientCertFile, c.ClientCertPEM, publicMode},
		{ServingCertFile, c.servingCertPEM, publicMode},
		{PasswordFile, []byte(c.password + "\n"), secretMode},
		{InfoFile, append(info, '\n'), publicMode},
	} {
		if err := pki.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// load reads credentials saved before and checks they are still good for
// cfg: the same CA as the token pins, the same node name and IP, and a
// client certificate with more than a third of its life left. Any problem
// is an error saying why; the caller joins again.
func load(dir, wantHash, nodeName, nodeIP string) (*Credentials, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	infoJSON, err := read(InfoFile)
	if err != nil {
		return nil, err
	}
	c := &Credentials{}
	if err := json.Unmarshal(infoJSON, &c.Info); err != nil {
		return nil, fmt.Errorf("%s: %w", InfoFile, err)
	}
	if c.NodeName != nodeName {
		return nil, fmt.Errorf("joined as node %q, now %q", c.NodeName, nodeName)
	}
	if nodeIP != "" && c.NodeIP != nodeIP {
		return nil, fmt.Errorf("joined with node IP %s, now %s", c.NodeIP, nodeIP)
	}
	if c.CACertPEM, err = read(CACertFile); err != nil {
		return nil, err
	}
	ca, err := pki.ParseCertPEM(c.CACertPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", CACertFile, err)
	}
	if got := pki.CertHash(ca); got != wantHash {
		return nil, fmt.Errorf("saved CA %s is not the token's %s", got, wantHash)
	}
	if c.ClientCertPEM, err = read(ClientCertFile); err != nil {
		return nil, err
	}
	if c.ClientKeyPEM, err = read(ClientKeyFile); err != nil {
		return nil, err
	}
	if c.servingCertPEM, err = read(ServingCertFile); err != nil {
		return nil, err
	}
	if c.servingKeyPEM, err = read(ServingKeyFile); err != nil {
		return nil, err
	}
	if err := c.check(ca, time.Now()); err != nil {
		return nil, err
	}
	return c, nil
}

// check parses the key pairs, verifies both certificates against ca and
// requires the client certificate to have more than a third of its life
// left at now. It fills in Serving.
func (c *Credentials) check(ca *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client, err := tls.X509KeyPair(c.ClientCertPEM, c.ClientKeyPEM)
	if err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	if _, err := client.Leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	if want := NodeUserPrefix + c.NodeName; client.Leaf.Subject.CommonName != want {
		return fmt.Errorf("client certificate is for %q, not %q", client.Leaf.Subject.CommonName, want)
	}
	life := client.Leaf.NotAfter.Sub(client.Leaf.NotBefore)
	if left := client.Leaf.NotAfter.Sub(now); left <= life/3 {
		return fmt.Errorf("client certificate expires at %s, within the last third of its life", client.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	serving, err := tls.X509KeyPair(c.servingCertPEM, c.servingKeyPEM)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	if _, err := serving.Leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, DNSName: c.NodeIP,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	c.Serving = serving
	return nil
}

// nodePassword returns the node password kept in dir, or a new one (32
// random bytes, hex) when there is none yet; save writes it with the
// credentials, so a join that fails leaves nothing behind.
func nodePassword(dir string) (string, error) {
	p := filepath.Join(dir, PasswordFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if pw := strings.TrimSpace(string(b)); pw != "" {
			return pw, nil
		}
		return "", fmt.Errorf("%s is empty; remove it, and the Node, to join anew", p)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("node password: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("node password: %w", err)
	}
	return hex.EncodeToString(raw), nil
}
