package join

// Paths on the API port.
const (
	// PathPrefix is where Handler is mounted (apiserver.Config.Extra).
	PathPrefix = "/v1-kiln"
	// JoinPath answers POST with a Request.
	JoinPath = PathPrefix + "/join"
	// CACertsPath is the API server's unauthenticated CA endpoint.
	CACertsPath = "/cacerts"
)

// Identities, as Kubernetes names them.
const (
	// BootstrapUser is the user the join secret authenticates as.
	BootstrapUser = "kiln:node-bootstrap"
	// GroupBootstrappers is the join secret's group: allowed to join,
	// refused everything else by the API.
	GroupBootstrappers = "system:bootstrappers"
	// GroupNodes is the group of every node's client certificate.
	GroupNodes = "system:nodes"
	// NodeUserPrefix + node name is a node's user name.
	NodeUserPrefix = "system:node:"
	// ServerName is the TLS server name agents verify every API server
	// by, whatever address they dial: each server's certificate names it.
	ServerName = "kubernetes"
)

// Request is the body of POST /v1-kiln/join.
type Request struct {
	// NodeName is the Node the agent will register: a DNS-1123 subdomain.
	NodeName string `json:"nodeName"`
	// NodeIP is the Node's InternalIP; the kubelet's serving certificate
	// is issued for it.
	NodeIP string `json:"nodeIP"`
	// ClientCSR and ServingCSR are PEM certificate requests (ECDSA keys);
	// only their public keys are used.
	ClientCSR  string `json:"clientCSR"`
	ServingCSR string `json:"servingCSR"`
	// NodePassword is the agent's own secret (DATA_DIR/agent/node-password),
	// which binds the node name to this machine: another machine with the
	// join token cannot take the name of a node that exists.
	NodePassword string `json:"nodePassword"`
}

// Response answers a successful join.
type Response struct {
	// CACert is the cluster CA (PEM); ClientCert and ServingCert are the
	// signed certificates (PEM).
	CACert      string `json:"caCert"`
	ClientCert  string `json:"clientCert"`
	ServingCert string `json:"servingCert"`
	Info
}

// Info is what the agent needs besides certificates: the answer's
// settings, kept in join.json.
type Info struct {
	// NodeName and NodeIP are what the certificates were issued for.
	NodeName    string `json:"nodeName"`
	NodeIP      string `json:"nodeIP"`
	ClusterCIDR string `json:"clusterCIDR"`
	ServiceCIDR string `json:"serviceCIDR"`
	ClusterDNS  string `json:"clusterDNS,omitempty"`
	// Servers are the API servers' URLs (https://host:port) the server
	// knows of; the agent adds the ones it was given.
	Servers []string `json:"servers,omitempty"`
}
