package resources

import (
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Catalog indexes a list of resources by group/version/plural and by
// group/version/kind. It is immutable after NewCatalog and safe for
// concurrent use; every Resource it returns is a copy the caller may modify.
type Catalog struct {
	all    []Resource
	byGVR  map[schema.GroupVersionResource]int
	byGVK  map[schema.GroupVersionKind]int
	groups []GroupVersions
}

// GroupVersions is one API group and the versions it is served at.
type GroupVersions struct {
	// Group is the API group; "" is the core group.
	Group string
	// Versions lists the served versions, preferred version first.
	Versions []string
}

// NewCatalog returns a Catalog over a copy of rs, kept in the given order.
// When two resources share a group/version/plural, or a group/version/kind,
// the first one wins the lookup. The order of rs decides the order of groups
// and of each group's versions: the first version listed for a group is its
// preferred version.
func NewCatalog(rs []Resource) *Catalog {
	c := &Catalog{
		all:   make([]Resource, 0, len(rs)),
		byGVR: make(map[schema.GroupVersionResource]int, len(rs)),
		byGVK: make(map[schema.GroupVersionKind]int, len(rs)),
	}
	groupIndex := map[string]int{}
	for _, r := range rs {
		i := len(c.all)
		c.all = append(c.all, r.clone())
		if _, ok := c.byGVR[r.GroupVersionResource()]; !ok {
			c.byGVR[r.GroupVersionResource()] = i
		}
		if _, ok := c.byGVK[r.GroupVersionKind()]; !ok {
			c.byGVK[r.GroupVersionKind()] = i
		}
		gi, ok := groupIndex[r.Group]
		if !ok {
			gi = len(c.groups)
			groupIndex[r.Group] = gi
			c.groups = append(c.groups, GroupVersions{Group: r.Group})
		}
		if !slices.Contains(c.groups[gi].Versions, r.Version) {
			c.groups[gi].Versions = append(c.groups[gi].Versions, r.Version)
		}
	}
	return c
}

// Lookup returns the resource with the given group, version and plural name.
func (c *Catalog) Lookup(group, version, name string) (Resource, bool) {
	i, ok := c.byGVR[schema.GroupVersionResource{Group: group, Version: version, Resource: name}]
	if !ok {
		return Resource{}, false
	}
	return c.all[i].clone(), true
}

// ForKind returns the resource whose objects have the given group, version
// and kind. List kinds are not matched.
func (c *Catalog) ForKind(gvk schema.GroupVersionKind) (Resource, bool) {
	i, ok := c.byGVK[gvk]
	if !ok {
		return Resource{}, false
	}
	return c.all[i].clone(), true
}

// All returns every resource, in the order given to NewCatalog.
func (c *Catalog) All() []Resource {
	out := make([]Resource, len(c.all))
	for i, r := range c.all {
		out[i] = r.clone()
	}
	return out
}

// Groups returns the served groups in order of first appearance, each with
// its versions, preferred version first.
func (c *Catalog) Groups() []GroupVersions {
	out := make([]GroupVersions, len(c.groups))
	for i, g := range c.groups {
		out[i] = GroupVersions{Group: g.Group, Versions: slices.Clone(g.Versions)}
	}
	return out
}
