package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/join"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/config"
)

// Join files: the generated join secret in DATA_DIR/tls, and the whole
// join token an operator copies to agents in DATA_DIR.
const (
	nodeSecretFile = "node.secret"
	nodeTokenFile  = "node-token"
)

// apiServerNames are the names every API server's certificate carries
// besides its addresses: agents dial whichever server answers and verify
// it as "kubernetes" (join.ServerName); pods know the API by the others.
var apiServerNames = []string{join.ServerName, "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}

// bootstrapUser is who the join secret authenticates as: allowed to join
// (the join endpoint), refused everything else by the API.
var bootstrapUser = apiserver.User{Name: join.BootstrapUser, Groups: []string{join.GroupBootstrappers}}

// newJoinEndpoint returns the join secret (--token, else generated once
// into DATA_DIR/tls/node.secret) and the join endpoint, and writes
// DATA_DIR/node-token, the K10 token agents join with (mode 0600: it is a
// credential).
func newJoinEndpoint(cfg *config.Config, st *store.Store, ca *pki.CA, tlsDir string, log *slog.Logger) (string, http.Handler, error) {
	secret := cfg.JoinSecret()
	if secret == "" {
		var err error
		if secret, err = pki.EnsureToken(filepath.Join(tlsDir, nodeSecretFile)); err != nil {
			return "", nil, fmt.Errorf("join secret: %w", err)
		}
	}
	tokenPath := filepath.Join(cfg.DataDir, nodeTokenFile)
	if err := os.WriteFile(tokenPath, []byte(pki.FormatJoinToken(ca.Hash(), secret)+"\n"), 0o600); err != nil {
		return "", nil, fmt.Errorf("write join token: %w", err)
	}
	// WriteFile keeps an existing file's mode.
	if err := os.Chmod(tokenPath, 0o600); err != nil {
		return "", nil, fmt.Errorf("write join token: %w", err)
	}
	h, err := join.Handler(join.HandlerConfig{
		CA:          ca,
		ClusterCIDR: cfg.ClusterCIDR,
		ServiceCIDR: cfg.ServiceCIDR,
		ClusterDNS:  cfg.ClusterDNS,
		Servers:     func() []string { return knownServers(st, cfg.APIListen) },
		ClaimName:   st.ClaimNodePassword,
		Logger:      log,
	})
	if err != nil {
		return "", nil, err
	}
	return secret, h, nil
}

// advertisedServers is this server's URL for agents when it listens on a
// specific address; on a wildcard address it cannot tell which one agents
// reach, and they keep the URL they joined with.
func advertisedServers(listen string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && (ip.IsUnspecified() || ip.IsLoopback()) || host == "localhost" {
		return nil
	}
	return []string{"https://" + net.JoinHostPort(host, port)}
}

// clientCAs is the pool client certificates (nodes') are verified against:
// the cluster CA.
func clientCAs(ca *pki.CA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}
