package join_test

import (
	"context"
	"net/http"

	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/join"
	"kiln.dev/kiln/components/apiserver/pki"
)

// The server mounts the endpoint on the API port and accepts the join
// secret as the bootstrap user; the agent joins with the whole token.
func Example() {
	ca, err := pki.EnsureCA("/var/lib/kiln/tls")
	if err != nil {
		return
	}
	h, err := join.Handler(join.HandlerConfig{CA: ca, ClusterCIDR: "10.42.0.0/16", ServiceCIDR: "10.43.0.0/16", ClusterDNS: "10.43.0.10"})
	if err != nil {
		return
	}
	secret := "0123abcd"
	_ = apiserver.Config{
		Extra:  map[string]http.Handler{join.PathPrefix: h},
		Tokens: map[string]apiserver.User{secret: {Name: join.BootstrapUser, Groups: []string{join.GroupBootstrappers}}},
	}
	token := pki.FormatJoinToken(ca.Hash(), secret) // DATA_DIR/node-token

	// On the agent's machine:
	creds, err := join.Join(context.Background(), join.JoinConfig{
		Servers: []string{"https://10.0.0.1:6443"}, Token: token,
		NodeName: "node-a", NodeIP: "10.0.0.2", Dir: "/var/lib/kiln-agent/agent",
	})
	if err != nil {
		return
	}
	_, _ = kubernetes.NewForConfig(creds.RESTConfig())
}
