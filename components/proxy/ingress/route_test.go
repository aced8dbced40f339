package ingress

import (
	"net/netip"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testPath is one path of a rule: path, type and Service, for short
// table tests.
type testPath struct {
	path, typ, svc string
}

func testIngress(name string, age int, def string, rules map[string][]testPath) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
		CreationTimestamp: metav1.NewTime(time.Unix(1000-int64(age), 0))}}
	be := func(svc string) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}}}
	}
	if def != "" {
		b := be(def)
		ing.Spec.DefaultBackend = &b
	}
	for host, paths := range rules {
		r := networkingv1.IngressRule{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{}}}
		for _, p := range paths {
			pt := networkingv1.PathType(p.typ)
			r.HTTP.Paths = append(r.HTTP.Paths, networkingv1.HTTPIngressPath{Path: p.path, PathType: &pt, Backend: be(p.svc)})
		}
		ing.Spec.Rules = append(ing.Spec.Rules, r)
	}
	return ing
}

const (
	exact  = string(networkingv1.PathTypeExact)
	prefix = string(networkingv1.PathTypePrefix)
	impl   = string(networkingv1.PathTypeImplementationSpecific)
)

func TestTable_route(t *testing.T) {
	ings := []*networkingv1.Ingress{
		testIngress("main", 10, "", map[string][]testPath{
			"foo.example": {
				{"/", prefix, "root"},
				{"/foo", exact, "foo-exact"},
				{"/foo", prefix, "foo-prefix"},
				{"/foo/bar/", prefix, "foobar"},
				{"/aaa/bbb", prefix, "aaabbb"},
				{"/x", impl, "impl"},
			},
			"*.wild.example": {{"/", prefix, "wild"}},
			"a.wild.example": {{"/only", prefix, "a-only"}},
			"":               {{"/api", prefix, "any-api"}},
		}),
		// Younger: its duplicate route loses, its new ones count.
		testIngress("young", 1, "young-default", map[string][]testPath{
			"foo.example": {{"/foo", exact, "young-foo"}, {"/new", exact, "young-new"}},
		}),
		testIngress("old-default", 20, "old-default", nil),
	}
	tbl := newTable(ings)
	for _, tc := range []struct {
		name, host, path, want string
	}{
		{"prefix root", "foo.example", "/", "root"},
		{"prefix root catches all", "foo.example", "/zzz/y", "root"},
		{"exact beats prefix of same path", "foo.example", "/foo", "foo-exact"},
		{"prefix with slash", "foo.example", "/foo/", "foo-prefix"},
		{"prefix element-wise", "foo.example", "/foo/baz", "foo-prefix"},
		{"not element prefix", "foo.example", "/foobar", "root"},
		{"longest prefix wins", "foo.example", "/foo/bar/baz", "foobar"},
		{"trailing slash of path ignored", "foo.example", "/foo/bar", "foobar"},
		{"prefix path without trailing slash", "foo.example", "/aaa/bbb/", "aaabbb"},
		{"partial element", "foo.example", "/aaa/bbbc", "root"},
		{"implementation specific is prefix", "foo.example", "/x/y", "impl"},
		{"host case and port", "FOO.Example:8080", "/foo", "foo-exact"},
		{"host trailing dot", "foo.example.", "/foo", "foo-exact"},
		{"younger ingress adds route", "foo.example", "/new", "young-new"},
		{"wildcard one label", "b.wild.example", "/z", "wild"},
		{"wildcard not two labels", "c.b.wild.example", "/z", "old-default"},
		{"wildcard not the bare domain", "wild.example", "/z", "old-default"},
		{"exact host first", "a.wild.example", "/only/x", "a-only"},
		{"exact host falls to wildcard", "a.wild.example", "/other", "wild"},
		{"any host rule", "unknown.example", "/api/v1", "any-api"},
		{"host rules before any host", "foo.example", "/api", "root"},
		{"oldest default backend", "unknown.example", "/", "old-default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tbl.route(tc.host, tc.path)
			if b == nil {
				t.Fatalf("route(%q, %q) = nil, want %s", tc.host, tc.path, tc.want)
			}
			if b.service != tc.want {
				t.Errorf("route(%q, %q) = %s (from %s), want %s", tc.host, tc.path, b.service, b.ingress, tc.want)
			}
		})
	}
}

func TestTable_route_noMatch(t *testing.T) {
	tbl := newTable([]*networkingv1.Ingress{testIngress("a", 0, "", map[string][]testPath{
		"foo.example": {{"/app", prefix, "app"}, {"/exact", exact, "ex"}},
	})})
	for _, tc := range []struct{ host, path string }{
		{"foo.example", "/"},
		{"foo.example", "/application"},
		{"foo.example", "/exact/"},
		{"bar.example", "/app"},
	} {
		if b := tbl.route(tc.host, tc.path); b != nil {
			t.Errorf("route(%q, %q) = %s, want no match", tc.host, tc.path, b.service)
		}
	}
	if b := newTable(nil).route("x", "/"); b != nil {
		t.Errorf("empty table routes to %s", b.service)
	}
}

func TestMergeStatus(t *testing.T) {
	lb := func(ips ...string) []networkingv1.IngressLoadBalancerIngress {
		var out []networkingv1.IngressLoadBalancerIngress
		for _, ip := range ips {
			out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
		}
		return out
	}
	own := mustAddrs("10.0.0.2")
	for _, tc := range []struct {
		name        string
		cur         []networkingv1.IngressLoadBalancerIngress
		serving     bool
		want        []networkingv1.IngressLoadBalancerIngress
		wantChanged bool
	}{
		{"add to empty", nil, true, lb("10.0.0.2"), true},
		{"merge with other node", lb("10.0.0.3", "10.0.0.1"), true, lb("10.0.0.1", "10.0.0.2", "10.0.0.3"), true},
		{"already there", lb("10.0.0.3", "10.0.0.2"), true, lb("10.0.0.3", "10.0.0.2"), false},
		{"remove own only", lb("10.0.0.1", "10.0.0.2"), false, lb("10.0.0.1"), true},
		{"not there, not serving", lb("10.0.0.1"), false, lb("10.0.0.1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := mergeStatus(tc.cur, own, tc.serving)
			if changed != tc.wantChanged || len(got) != len(tc.want) {
				t.Fatalf("mergeStatus = %v, %v; want %v, %v", got, changed, tc.want, tc.wantChanged)
			}
			for i := range got {
				if got[i].IP != tc.want[i].IP {
					t.Fatalf("mergeStatus = %v; want %v", got, tc.want)
				}
			}
		})
	}
}

func mustAddrs(ips ...string) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		out = append(out, netip.MustParseAddr(ip))
	}
	return out
}
