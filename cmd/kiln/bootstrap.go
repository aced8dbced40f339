package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/config"
)

// adminTokenFile is the admin bearer token's file in DATA_DIR/tls.
const adminTokenFile = "admin.token"

// shareBootstrap makes this server agree with the others on an external
// datastore before it makes any certificate: the first server seals its
// CA, admin token and join secret into the datastore (store.BootstrapKey);
// every later one installs them into its own tlsDir, where pki.EnsureCA and
// pki.EnsureToken then find them. With the embedded etcd there is nothing
// to share. A wrong --token, or a tlsDir holding another CA, is an error
// that stops the server before it serves anything.
func shareBootstrap(ctx context.Context, cfg *config.Config, st *store.Store, tlsDir string) error {
	if len(cfg.Datastore.Endpoints) == 0 {
		return nil
	}
	secret := cfg.JoinSecret()
	if secret == "" {
		return errors.New("token: required with datastore.endpoints")
	}
	tokenPath := filepath.Join(tlsDir, adminTokenFile)
	certPath, keyPath := filepath.Join(tlsDir, pki.CACertFile), filepath.Join(tlsDir, pki.CAKeyFile)
	_, statErr := os.Stat(certPath)
	hadCA := statErr == nil
	var offered []byte
	data, err := st.Bootstrap(ctx, func() ([]byte, error) {
		// First server: what it has (or makes now) becomes the cluster's.
		ca, err := pki.EnsureCA(tlsDir)
		if err != nil {
			return nil, err
		}
		keyPEM, err := ca.KeyPEM()
		if err != nil {
			return nil, err
		}
		token, err := pki.EnsureToken(tokenPath)
		if err != nil {
			return nil, err
		}
		offered, err = pki.SealBootstrap(secret, pki.Bootstrap{CACertPEM: ca.CertPEM, CAKeyPEM: keyPEM, AdminToken: token, JoinSecret: secret})
		return offered, err
	})
	if err != nil {
		return fmt.Errorf("datastore bootstrap: %w", err)
	}
	if offered != nil && !bytes.Equal(offered, data) && !hadCA {
		// Two first servers raced and this one lost: the CA it made a
		// moment ago was never used; make way for the winner's.
		for _, p := range []string{certPath, keyPath} {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("datastore bootstrap: %w", err)
			}
		}
	}
	b, err := pki.OpenBootstrap(secret, data)
	if err != nil {
		if errors.Is(err, pki.ErrBootstrapSecret) {
			return fmt.Errorf("%w: give this server the --token the first server of this datastore was started with", err)
		}
		return fmt.Errorf("datastore bootstrap: %w", err)
	}
	if err := pki.InstallCA(tlsDir, b.CACertPEM, b.CAKeyPEM); err != nil {
		return fmt.Errorf("datastore bootstrap: %w", err)
	}
	// Every server's in-process clients use the admin token, and any
	// server may be the one they reach: the datastore's wins over a
	// token this data dir had before.
	if err := pki.WriteToken(tokenPath, b.AdminToken); err != nil {
		return fmt.Errorf("datastore bootstrap: %w", err)
	}
	return nil
}
