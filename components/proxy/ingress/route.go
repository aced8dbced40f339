package ingress

import (
	"cmp"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	networkingv1 "k8s.io/api/networking/v1"
)

// backend is where a matched request goes: a Service port, resolved to
// ready endpoints at request time, so that endpoint changes need no new
// table.
type backend struct {
	namespace, service string
	port               networkingv1.ServiceBackendPort
	// ingress is the namespace/name of the Ingress that defined it, for
	// logs.
	ingress string
	// next turns the round robin over the endpoints.
	next atomic.Uint64
}

// pathRoute is one path of a rule. Prefix paths are kept without their
// trailing "/" ("" for "/"), so that the element-wise match is a string
// comparison.
type pathRoute struct {
	path    string
	backend *backend
}

// hostRoutes are the paths of every rule for one host.
type hostRoutes struct {
	exact  map[string]*backend
	prefix []pathRoute // longest path first
}

// table is the routing state of every served Ingress, immutable once
// built: a change builds a new one and swaps it in.
type table struct {
	hosts     map[string]*hostRoutes // exact host names
	wildcards map[string]*hostRoutes // "*.example.com" under "example.com"
	anyHost   *hostRoutes            // rules without a host
	// defaultBackend answers what no rule matches.
	defaultBackend *backend
}

// newTable builds the routes of ings. Where two Ingresses define the
// same host, path and type (or a default backend), the older one wins,
// as ingress-nginx decides, so that a new Ingress cannot take over a
// route that is already served.
func newTable(ings []*networkingv1.Ingress) *table {
	t := &table{hosts: map[string]*hostRoutes{}, wildcards: map[string]*hostRoutes{}}
	for _, ing := range sortIngresses(ings) {
		t.add(ing)
	}
	for _, h := range t.all() {
		// Longest first; the sort is stable, so among equal paths the
		// first added (the oldest Ingress) comes first and wins.
		slices.SortStableFunc(h.prefix, func(a, b pathRoute) int { return cmp.Compare(len(b.path), len(a.path)) })
	}
	return t
}

// sortIngresses returns ings oldest first (then by namespace/name), the
// order in which conflicting definitions are decided.
func sortIngresses(ings []*networkingv1.Ingress) []*networkingv1.Ingress {
	ings = slices.Clone(ings)
	slices.SortFunc(ings, func(a, b *networkingv1.Ingress) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return ings
}

func (t *table) all() []*hostRoutes {
	out := []*hostRoutes{}
	if t.anyHost != nil {
		out = append(out, t.anyHost)
	}
	for _, h := range t.hosts {
		out = append(out, h)
	}
	for _, h := range t.wildcards {
		out = append(out, h)
	}
	return out
}

func (t *table) add(ing *networkingv1.Ingress) {
	src := ing.Namespace + "/" + ing.Name
	newBackend := func(b networkingv1.IngressBackend) *backend {
		if b.Service == nil {
			return nil // a Resource backend: not served by kiln
		}
		return &backend{namespace: ing.Namespace, service: b.Service.Name, port: b.Service.Port, ingress: src}
	}
	if d := ing.Spec.DefaultBackend; d != nil && t.defaultBackend == nil {
		t.defaultBackend = newBackend(*d)
	}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		h := t.hostRoutes(strings.ToLower(rule.Host))
		for _, p := range rule.HTTP.Paths {
			b := newBackend(p.Backend)
			if b == nil {
				continue
			}
			if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
				if _, dup := h.exact[p.Path]; !dup {
					h.exact[p.Path] = b
				}
				continue
			}
			// Prefix, and ImplementationSpecific read as Prefix.
			path := strings.TrimRight(p.Path, "/")
			if !slices.ContainsFunc(h.prefix, func(r pathRoute) bool { return r.path == path }) {
				h.prefix = append(h.prefix, pathRoute{path: path, backend: b})
			}
		}
	}
}

func (t *table) hostRoutes(host string) *hostRoutes {
	var m map[string]*hostRoutes
	switch {
	case host == "":
		if t.anyHost == nil {
			t.anyHost = &hostRoutes{exact: map[string]*backend{}}
		}
		return t.anyHost
	case strings.HasPrefix(host, "*."):
		m, host = t.wildcards, host[2:]
	default:
		m = t.hosts
	}
	h := m[host]
	if h == nil {
		h = &hostRoutes{exact: map[string]*backend{}}
		m[host] = h
	}
	return h
}

// route returns the backend of a request for host (a Host header, with
// or without a port) and path, or nil when nothing matches. The most
// specific host's rules are tried first: the exact host, then the
// one-label wildcard, then rules without a host; the first with a
// matching path wins, and the default backend takes the rest.
func (t *table) route(host, path string) *backend {
	host = normalizeHost(host)
	if h := t.hosts[host]; h != nil {
		if b := h.match(path); b != nil {
			return b
		}
	}
	if label, parent, ok := strings.Cut(host, "."); ok && label != "" {
		if h := t.wildcards[parent]; h != nil {
			if b := h.match(path); b != nil {
				return b
			}
		}
	}
	if t.anyHost != nil {
		if b := t.anyHost.match(path); b != nil {
			return b
		}
	}
	return t.defaultBackend
}

// match applies the Ingress path rules: an Exact path that equals path
// beats every Prefix (a Prefix can match no longer a path than that),
// and among Prefix paths the longest that matches element-wise wins.
func (h *hostRoutes) match(path string) *backend {
	if b := h.exact[path]; b != nil {
		return b
	}
	for _, r := range h.prefix {
		if r.path == "" || path == r.path || strings.HasPrefix(path, r.path) && path[len(r.path)] == '/' {
			return r.backend
		}
	}
	return nil
}

// normalizeHost lower-cases a Host header or SNI name and drops its port
// and a trailing dot.
func normalizeHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
