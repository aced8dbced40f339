// Package join is how a machine becomes a kiln node over the network: the
// server's join endpoint (Handler, mounted on the API port at
// /v1-kiln/join through apiserver.Config.Extra) and the agent's side
// (Join).
//
// The join token, K10<CA hash>::node:<secret> (pki.FormatJoinToken), is
// what an operator copies from the server's DATA_DIR/node-token. The agent
// first fetches the CA from GET /cacerts without verifying anything and
// compares the SHA-256 of its public key with the token's hash: only when
// they match, and only over TLS verified against that CA, does it send the
// secret (as kubeadm's --discovery-token-ca-cert-hash and k3s's K10 tokens
// do). The secret authenticates it as the bootstrap user, which the API
// refuses everything but this endpoint. The agent sends two certificate
// signing requests, so its private keys never leave it; the server signs a
// client certificate for system:node:<name> in system:nodes (the node
// authorizer's identity) and a serving certificate for the kubelet, and
// answers with the cluster's network settings and every server's URL.
//
// The agent keeps what it got in its directory (ca.crt, client.crt,
// client.key, kubelet.crt, kubelet.key, join.json) and reuses it on later
// starts without asking the server while the client certificate has more
// than a third of its life left.
//
//	// server (cmd/kiln)
//	h, err := join.Handler(join.HandlerConfig{CA: ca, ClusterCIDR: "10.42.0.0/16",
//		ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10"})
//	apiCfg.Extra = map[string]http.Handler{join.PathPrefix: h}
//
//	// agent
//	creds, err := join.Join(ctx, join.JoinConfig{Servers: []string{"https://10.0.0.1:6443"},
//		Token: token, NodeName: "a", NodeIP: "10.0.0.2", Dir: "/var/lib/kiln-agent/agent"})
//	cs, err := kubernetes.NewForConfig(creds.RESTConfig())
package join
