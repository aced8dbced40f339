// Package pki owns kiln's self-generated certificate authority and the
// files around it in DATA_DIR/tls and DATA_DIR: the CA (ca.crt, ca.key),
// serving certificates signed by it, client certificates for agents, the
// random admin bearer token and the admin kubeconfig.
//
// Everything is created on first start and reused afterwards: the CA is
// never replaced behind the user's back (a damaged or half-written CA is an
// error), while a serving certificate that expires within 30 days, no longer
// chains to the CA or misses a host is simply issued again. Keys are ECDSA
// P-256 and key files are mode 0600. Nothing here talks to the network; cmd
// calls it before starting the API server.
//
//	ca, err := pki.EnsureCA(filepath.Join(dataDir, "tls"))
//	cert, err := ca.EnsureServing(filepath.Join(dataDir, "tls"), "apiserver",
//		[]string{"127.0.0.1", "localhost"})
//	token, err := pki.EnsureToken(filepath.Join(dataDir, "admin-token"))
//	err = pki.WriteKubeconfig(filepath.Join(dataDir, "admin.kubeconfig"),
//		"https://127.0.0.1:6443", ca.CertPEM, "admin", token)
//
// Agents joining over HTTPS pin the CA with Hash, as kubeadm's
// --discovery-token-ca-cert-hash does.
package pki
