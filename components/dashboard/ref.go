package dashboard

import (
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Ref names one object; the pages link it to its object page.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// refOf is the Ref of a typed kind's object; version is the one version
// kiln serves it at.
func refOf(gk schema.GroupKind, namespace, name string) Ref {
	v := "v1"
	return Ref{Group: gk.Group, Version: v, Kind: gk.Kind, Namespace: namespace, Name: name}
}

// refFromAPIVersion builds a Ref from an apiVersion ("apps/v1", "v1").
func refFromAPIVersion(apiVersion, kind, namespace, name string) Ref {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		gv = schema.GroupVersion{Version: apiVersion}
	}
	return Ref{Group: gv.Group, Version: gv.Version, Kind: kind, Namespace: namespace, Name: name}
}

// URL is the object's page. The values are query-encoded here and the
// URL escaped again by html/template where it is written.
func (r Ref) URL() string {
	v := url.Values{}
	if r.Group != "" {
		v.Set("group", r.Group)
	}
	v.Set("version", r.Version)
	v.Set("kind", r.Kind)
	if r.Namespace != "" {
		v.Set("namespace", r.Namespace)
	}
	v.Set("name", r.Name)
	return "/object?" + v.Encode()
}

// Title is "Kind namespace/name".
func (r Ref) Title() string { return r.Kind + " " + nsName(r.Namespace, r.Name) }

// GroupKind is the Ref's group kind.
func (r Ref) GroupKind() schema.GroupKind { return schema.GroupKind{Group: r.Group, Kind: r.Kind} }

// redactURL removes the userinfo of a repository URL: a token in it
// (https://TOKEN@host/...) must not reach a page. An scp-like
// user@host:path carries only a user name and is left alone.
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: keep what is certainly not userinfo.
		if i := strings.LastIndex(s, "@"); i >= 0 {
			scheme, _, _ := strings.Cut(s, "://")
			return scheme + "://" + s[i+1:]
		}
		return s
	}
	if u.User == nil {
		return s
	}
	u.User = nil
	return u.String()
}
