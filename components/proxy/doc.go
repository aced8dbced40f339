// Package proxy is kiln's service proxy, the part of kube-proxy a kiln
// node needs: it watches Services and EndpointSlices through the API
// server and keeps the node's packet-filter rules such that a Service's
// ClusterIP and NodePorts reach its ready endpoints.
//
// The proxy owns the Rules boundary and the model it is fed (RuleSet,
// ServicePort, Endpoint): which Services get rules (not headless or
// ExternalName ones, nor one at the cluster DNS address, which the node
// serves itself), named target ports resolved per EndpointSlice, ready
// endpoints (or terminating ones while none is ready), node-local
// endpoints for the Local traffic policies, session affinity. How that
// becomes packet-filter rules is the implementation's business:
// proxy/iptables writes kube-proxy's iptables-mode chains, and
// proxy/fakerules records RuleSets for tests. Cluster DNS is the
// sibling package proxy/dns.
//
// Syncing: a full sync once the caches are filled, then, after each burst
// of changes (Config.MinSyncPeriod, 30 ms by default), a partial sync
// that rewrites only the Services that changed; a full sync again every
// Config.SyncPeriod (30 s) and after any failed sync, which is retried
// with backoff. A one-Service change is in the node's rules about 50 ms
// after its API write with 1,000 Services present (BenchmarkProxySync in
// proxy/iptables).
//
// Usage, on a node:
//
//	rules, err := iptables.New(iptables.Config{})
//	if err != nil { ... }
//	p, err := proxy.New(proxy.Config{
//		Client: cs, Rules: rules, NodeName: "node-a",
//		NodeIPs: []netip.Addr{nodeIP}, ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"),
//		ClusterDNS: netip.MustParseAddr("10.43.0.10"),
//	})
//	if err != nil { ... }
//	err = p.Run(ctx) // blocks until ctx is done; the rules stay
//	...
//	err = rules.Cleanup(ctx) // kiln server --cleanup-network
package proxy
