package proxy

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Rules writes a RuleSet into the node's packet filter. The proxy owns
// this boundary; proxy/iptables is the real implementation and
// proxy/fakerules records calls for tests.
//
// The proxy calls the methods from one goroutine, one at a time. Each
// method blocks until the rules are in place (or not) and must not keep rs
// or anything it points to after it returns: the proxy changes the maps
// between calls.
type Rules interface {
	// Sync makes the node's rules exactly rs: every kiln chain is
	// rewritten, chains of services no longer in rs are removed and the
	// jumps from the built-in chains are ensured. It is the start-up and
	// periodic resync, and the repair after any failed call.
	Sync(ctx context.Context, rs *RuleSet) error
	// SyncServices applies rs when only the Services named in changed
	// differ from the rs of the previous successful call (a Service that
	// is absent from rs.Services was deleted). An implementation may
	// rewrite just those Services' rules. After an error the node's rules
	// are unknown; the caller must call Sync next.
	SyncServices(ctx context.Context, rs *RuleSet, changed []types.NamespacedName) error
	// Cleanup removes every chain of the proxy and every jump to one,
	// leaving no trace of the proxy (kiln server --cleanup-network) and
	// nothing else touched. Removing what is not there is not an error.
	Cleanup(ctx context.Context) error
}

// RuleSet is everything the node's Service rules are made from: one entry
// per Service that gets rules, and the node-wide settings.
type RuleSet struct {
	// ClusterCIDR is the pod network. Traffic to a ClusterIP from outside
	// it is masqueraded so that replies come back through this node; the
	// zero Prefix means unknown, and then only hairpin and NodePort
	// traffic is masqueraded.
	ClusterCIDR netip.Prefix
	// NodePortAddresses are the addresses NodePorts answer on; empty means
	// every local address of the node.
	NodePortAddresses []netip.Addr
	// Services maps each Service that gets rules to its ports, sorted by
	// port name. Services without a ClusterIP (headless, ExternalName) are
	// absent.
	Services map[types.NamespacedName][]ServicePort
}

// ServicePort is one port of one Service, with the endpoints that serve it.
type ServicePort struct {
	// Service is the Service's namespace and name.
	Service types.NamespacedName
	// Name is the port's name; "" for a Service with one unnamed port.
	Name     string
	Protocol corev1.Protocol
	// ClusterIP and Port are the virtual address clients connect to.
	ClusterIP netip.Addr
	Port      int32
	// NodePort is the port on the node's addresses; 0 means none.
	NodePort int32
	// AffinitySeconds is the sessionAffinity ClientIP timeout; 0 means no
	// affinity.
	AffinitySeconds int32
	// ExternalLocal is externalTrafficPolicy Local: NodePort traffic from
	// outside goes only to endpoints on this node and keeps its source.
	ExternalLocal bool
	// InternalLocal is internalTrafficPolicy Local: ClusterIP traffic goes
	// only to endpoints on this node.
	InternalLocal bool
	// Endpoints are the addresses traffic is spread over, sorted and
	// without duplicates: the ready ones, or, when none is ready, the
	// serving ones that are terminating (as kube-proxy falls back).
	// Empty means the Service rejects connections.
	Endpoints []Endpoint
}

// String is "namespace/name:port", as kube-proxy names a service port in
// logs and rule comments.
func (sp *ServicePort) String() string {
	return fmt.Sprintf("%s/%s:%s", sp.Service.Namespace, sp.Service.Name, sp.Name)
}

// Endpoint is one backend of a ServicePort, with the port resolved from
// the EndpointSlice (so a named targetPort becomes a number).
type Endpoint struct {
	IP   netip.Addr
	Port int32
	// Local is true when the endpoint's nodeName is this node.
	Local bool
}

// String is "ip:port".
func (ep Endpoint) String() string {
	return netip.AddrPortFrom(ep.IP, uint16(ep.Port)).String()
}
