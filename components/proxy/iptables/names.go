package iptables

import (
	"crypto/sha256"
	"encoding/base32"
	"slices"
	"strings"

	"kiln.dev/kiln/components/proxy"
)

// Chains every node has. Every chain kiln makes starts with chainPrefix,
// but not every such chain is the proxy's: the container runtime keeps
// its masquerade chain (KILN-MASQ-<bridge>) in the same nat table, so
// Cleanup and stale-chain removal go by owned, not by the prefix.
const (
	chainPrefix = "KILN-"
	// chainServices dispatches ClusterIP traffic (nat) and rejects
	// traffic to Services without endpoints (filter).
	chainServices = "KILN-SERVICES"
	// chainExternalServices rejects NodePort traffic to Services without
	// endpoints (filter).
	chainExternalServices = "KILN-EXTERNAL-SERVICES"
	// chainNodePorts dispatches NodePort traffic (nat).
	chainNodePorts = "KILN-NODEPORTS"
	// chainPostrouting masquerades marked traffic (nat).
	chainPostrouting = "KILN-POSTROUTING"
	// chainMarkMasq marks a packet for masquerading (nat).
	chainMarkMasq = "KILN-MARK-MASQ"
	// chainForward accepts Service and pod traffic in FORWARD (filter).
	chainForward = "KILN-FORWARD"
	// chainFirewall drops martian packets to 127.0.0.0/8 that
	// route_localnet would otherwise let in (filter).
	chainFirewall = "KILN-FIREWALL"
)

// masqMark is the bit that marks a packet for masquerading, kube-proxy's
// 0x4000, so that tools that know kube-proxy's mark read kiln's too.
const masqMark = "0x4000"

// Per-service chain kinds. Names are the kind's prefix plus 16 characters
// of a hash, as kube-proxy's are: a chain name may have at most 28
// characters, and the hash makes it stable across restarts.
const (
	prefixSVC = "KILN-SVC-" // all endpoints of a service port
	prefixSVL = "KILN-SVL-" // the node-local endpoints
	prefixEXT = "KILN-EXT-" // NodePort traffic, before the policy chain
	prefixSEP = "KILN-SEP-" // one endpoint: DNAT
)

// owned reports whether chain is one of the proxy's: a shared chain or a
// per-service one. A full sync deletes the owned chains it did not
// write, and Cleanup all of them; any other kiln chain is left alone.
func owned(chain string) bool {
	if slices.Contains(natShared, chain) || slices.Contains(filterShared, chain) {
		return true
	}
	for _, p := range []string{prefixSVC, prefixSVL, prefixEXT, prefixSEP} {
		if strings.HasPrefix(chain, p) {
			return true
		}
	}
	return false
}

func hashName(prefix, s string) string {
	sum := sha256.Sum256([]byte(s))
	return prefix + base32.StdEncoding.EncodeToString(sum[:])[:16]
}

// ServiceChain is the name of the chain that spreads a service port's
// traffic over all its endpoints.
func ServiceChain(sp *proxy.ServicePort) string {
	return hashName(prefixSVC, sp.String()+string(sp.Protocol))
}

func localChain(sp *proxy.ServicePort) string {
	return hashName(prefixSVL, sp.String()+string(sp.Protocol))
}

func externalChain(sp *proxy.ServicePort) string {
	return hashName(prefixEXT, sp.String()+string(sp.Protocol))
}

// EndpointChain is the name of the chain that DNATs a service port's
// traffic to one endpoint.
func EndpointChain(sp *proxy.ServicePort, ep proxy.Endpoint) string {
	return hashName(prefixSEP, sp.String()+string(sp.Protocol)+ep.String())
}
