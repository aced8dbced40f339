// Package dashboard is kiln's read-only status web UI: what is deployed
// from which commit, whether it is healthy, and if not, why.
//
// It reads only through the API, like every component: client-go
// informers on Sources, nodes, pods, workloads, Services, EndpointSlices,
// Events and namespaces, plus informers on the other kinds that Sources
// manage, which drop Secret and ConfigMap values before caching; an
// object's YAML is one GET (a Secret's values hidden) and a crash-looping
// container's last log lines one pods/log request. It writes nothing.
//
// Pages are rendered on the server with html/template, so they work
// without JavaScript; a small embedded script (static/app.js) listens on
// the Server-Sent Events stream /events/stream and swaps in the page's
// main fragment (?fragment=1) when the cluster changes. /api/status is
// the overview as JSON and /metrics the Prometheus metrics.
//
// Usage:
//
//	d, err := dashboard.New(dashboard.Config{Client: cs, Dynamic: dyn})
//	if err != nil { ... }
//	go d.Run(ctx) // informers and the live-update hub, until ctx is done
//	mux.Handle("/", d.Handler())
package dashboard
