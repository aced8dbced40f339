package resources

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource describes one served REST resource: one group, version and plural
// name. Field values match what kube-apiserver reports in discovery for the
// same resource.
type Resource struct {
	// Group is the API group; "" is the core (legacy) group served under /api.
	Group string
	// Version is the API version, e.g. "v1".
	Version string
	// Name is the lower-case plural used in URLs, e.g. "deployments".
	Name string
	// Singular is the lower-case singular name, e.g. "deployment".
	Singular string
	// Kind is the kind of a single object, e.g. "Deployment".
	Kind string
	// ListKind is the kind of a list of objects, e.g. "DeploymentList". It is
	// empty for resources that cannot be listed, such as bindings and
	// tokenreviews, which have no list type.
	ListKind string
	// Namespaced reports whether objects live in a namespace.
	Namespaced bool
	// ShortNames are the kubectl abbreviations, e.g. "deploy".
	ShortNames []string
	// Categories are the groupings kubectl expands, e.g. "all".
	Categories []string
	// Verbs are the verbs allowed on the resource itself, sorted.
	Verbs []string
	// Subresources are the served subresources, sorted by name.
	Subresources []Subresource
}

// Subresource describes one subresource of a Resource, e.g. pods/status.
type Subresource struct {
	// Name is the path segment after the object name, e.g. "status", "scale".
	Name string
	// Group, Version and Kind identify the kind of the request and response
	// body, as discovery reports it: the resource's own kind for status,
	// autoscaling/v1 Scale for scale, v1 Binding for pods/binding and so on.
	Group, Version, Kind string
	// Verbs are the verbs allowed on the subresource, sorted.
	Verbs []string
}

// GroupVersion returns the resource's group and version.
func (r Resource) GroupVersion() schema.GroupVersion {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}
}

// GroupVersionResource returns the resource's group, version and plural.
func (r Resource) GroupVersionResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Group, Version: r.Version, Resource: r.Name}
}

// GroupVersionKind returns the group, version and kind of a single object.
func (r Resource) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// HasSubresource reports whether the resource serves the named subresource.
func (r Resource) HasSubresource(name string) bool {
	_, ok := r.Subresource(name)
	return ok
}

// Subresource returns the named subresource, if the resource serves it.
func (r Resource) Subresource(name string) (Subresource, bool) {
	for _, s := range r.Subresources {
		if s.Name == name {
			return s, true
		}
	}
	return Subresource{}, false
}

// GroupVersionKind returns the group, version and kind of the subresource's
// request and response body.
func (s Subresource) GroupVersionKind() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: s.Group, Version: s.Version, Kind: s.Kind}
}

// clone returns a deep copy of r, so that a copy handed out can be changed
// without touching the original.
func (r Resource) clone() Resource {
	r.ShortNames = slices.Clone(r.ShortNames)
	r.Categories = slices.Clone(r.Categories)
	r.Verbs = slices.Clone(r.Verbs)
	if r.Subresources != nil {
		subs := make([]Subresource, len(r.Subresources))
		for i, s := range r.Subresources {
			s.Verbs = slices.Clone(s.Verbs)
			subs[i] = s
		}
		r.Subresources = subs
	}
	return r
}
