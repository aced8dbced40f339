// Package apiserver serves a Kubernetes-compatible REST API over the store:
// discovery (aggregated and legacy), a minimal OpenAPI v3 document, CRUD,
// list with selectors and paging, watch (including sendInitialEvents),
// JSON/merge/strategic-merge/apply patches, the status, scale, binding and
// log subresources, admission (defaulting, validation, ClusterIP and
// NodePort allocation), Table output for kubectl, and authentication by
// bearer token or client certificate (Config.ClientCAs).
//
// Authorization: system:masters may do everything; users in system:nodes
// named system:node:<node> (kubelets, by the certificate they got at
// join) get what Kubernetes's Node authorizer, NodeRestriction and
// system:node role give them, narrowed to their own Node and Lease, the
// pods bound to them and the Secrets and ConfigMaps those pods use, and
// read access to Services and endpoints (nodeauthz.go); its decisions are
// map lookups in a graph of pods that follows the store (nodegraph.go).
// Everyone else gets 403. GET /cacerts serves the CA certificate
// (Config.CACertPEM) without authentication, for joining agents.
//
// Objects are the real k8s.io/api types, stored as JSON at
// /registry/<group>/<resource>/<namespace>/<name>; an object's
// resourceVersion is its etcd mod revision. A kind served at two versions
// is stored at one and converted both ways, as kube does: HPAs are stored
// at autoscaling/v2 and served at v1 too (conversion.go). Request bodies
// are JSON, YAML or protobuf. Responses are JSON, except that a create,
// update or patch answers in protobuf to a client that ranks it first in
// Accept, as client-go's typed clients do (codec.go, writeObject). Every
// other kiln component is a client of this API; only cmd hands the store
// to it.
//
// Watches are served from a per-resource watch cache (watchcache.go), the
// small version of kube-apiserver's cacher: one store watch per watched
// resource, each event decoded and encoded once for every client watch,
// pods indexed by spec.nodeName for kubelets' watches, and a window of
// recent events to resume from; a watch from before the window has its own
// store watch, and one from a compacted revision gets 410 Gone.
//
// With Config.ClusterDNS set, the server creates kube-system/kube-dns at
// that address on start, as k3s does, so that no other Service gets it.
// Config.Extra mounts other services on the API port (the git server):
// each prefix's handler gets requests that carried a valid bearer token
// or client certificate, with the user in the context (UserFrom), and
// decides authorization itself; a request without credentials gets 401
// with WWW-Authenticate: Bearer.
//
//	cfg.Extra = map[string]http.Handler{"/git": gitServer}
//	// in gitServer: u, _ := apiserver.UserFrom(r.Context())
//
//	srv, err := apiserver.New(apiserver.Config{Store: st, Listen: "127.0.0.1:6443", ...})
//	go srv.Run(ctx)
//	<-srv.Ready()
package apiserver
