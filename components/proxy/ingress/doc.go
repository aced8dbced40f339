// Package ingress is kiln's ingress controller, what Traefik is to k3s:
// on every node that runs the proxy it serves the networking.k8s.io/v1
// Ingresses of its IngressClasses (spec.controller kiln.dev/ingress; the
// API server creates the default class "kiln") over HTTP and HTTPS, and
// writes the node's address into their status.
//
// Routing follows the Ingress spec: rules by host (exact, or "*.domain"
// for one label), then paths, Exact before Prefix and the longest Prefix
// first (element-wise: /foo matches /foo/bar, not /foobar;
// ImplementationSpecific is Prefix); an exact host's rules are tried
// before a wildcard's, and those before rules without a host; the
// defaultBackend takes the rest, and without one the answer is 404.
// Where Ingresses define the same route, the oldest wins. A backend is a
// Service port (by number or name); requests go round robin to its ready
// endpoints from the EndpointSlices, through httputil.ReverseProxy: the
// client's Host is kept, X-Forwarded-For/-Proto/-Host/-Port are set,
// responses stream, and Upgrade (WebSocket) requests pass. A Service
// without ready endpoints (or missing) is a 503, an endpoint that does
// not answer a 502.
//
// HTTPS picks the certificate by SNI from the Ingresses' spec.tls
// Secrets (type kubernetes.io/tls, in the Ingress's namespace); other
// names get a self-signed default certificate, as Traefik does. Each
// Secret is watched on its own, by name and type, so a node sees only
// those (the API server's node authorizer allows no more).
//
// Changes are applied without restarting the listeners: the routes and
// certificates are immutable tables swapped after each burst of changes.
// A bad Ingress (unknown Service, missing Secret) is logged and the rest
// is served.
//
// It talks only to the API server (informers, Ingress status) and to the
// endpoints.
//
//	ing, err := ingress.New(ingress.Config{Client: cs, Listen: "0.0.0.0:80", TLSListen: "0.0.0.0:443",
//		StatusIPs: []netip.Addr{nodeIP}})
//	if err != nil { ... }
//	err = ing.Run(ctx) // blocks until ctx is done
package ingress
