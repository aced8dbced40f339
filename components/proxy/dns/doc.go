// Package dns is kiln's cluster DNS: it answers the cluster domain
// (cluster.local) from the API's Services and EndpointSlices, as CoreDNS's
// kubernetes plugin does for k3s, and forwards every other name to the
// host's resolvers.
//
// Records: <svc>.<ns>.svc.cluster.local is the ClusterIP (A), the ready
// endpoints of a headless Service (A), or the target of an ExternalName
// Service (CNAME); <hostname>.<svc>.<ns>.svc.cluster.local an endpoint of
// a headless Service; _<port>._<proto>.<svc>.<ns>.svc.cluster.local the
// SRV records of a named port; <a-b-c-d>.<ns>.pod.cluster.local the pod
// address a.b.c.d; PTR records for ClusterIPs. Unknown names in the domain
// are NXDOMAIN with the zone's SOA. Forwarding keeps the client's
// transport; an upstream UDP answer with TC set is fetched again over
// TCP, and an answer too large for the client's UDP size is truncated so
// the client retries over TCP.
//
// It runs on every node at the cluster DNS address (10.43.0.10), held by
// a local link made with EnsureInterface, as NodeLocal DNSCache does: a
// pod's query goes through its default route to the node and is answered
// there, with no Service rule involved (the proxy skips a Service at that
// address). The kubelet writes pods' resolv.conf to point at it:
//
//	search <ns>.svc.cluster.local svc.cluster.local cluster.local
//	nameserver 10.43.0.10
//	options ndots:5
//
// It talks only to the API server (informers) and to the upstreams.
//
//	if err := dns.EnsureInterface(dns.DefaultInterface, netip.MustParseAddr("10.43.0.10")); err != nil { ... }
//	srv, err := dns.New(dns.Config{Client: cs, Listen: []string{"10.43.0.10:53"}})
//	if err != nil { ... }
//	err = srv.Run(ctx) // blocks until ctx is done
package dns
