// Package resources is the catalog of the REST resources the kiln API server
// serves: for every group, version and plural, the kind, scope, short names,
// categories, verbs and subresources, the way kube-apiserver reports them in
// discovery.
//
// Builtin lists every served resource in discovery order. It covers one
// version per group that k8s.io/client-go/kubernetes/scheme registers (the
// version kube-apiserver prefers, plus autoscaling/v1 next to
// autoscaling/v2), apiextensions.k8s.io/v1 customresourcedefinitions, and
// kiln's own gitops.kiln.dev/v1alpha1 sources. A Catalog indexes such a list
// for the server's request routing and discovery handlers.
//
// The package owns no state and talks to nothing; it is data plus lookups.
//
//	cat := resources.NewCatalog(resources.Builtin())
//	r, ok := cat.Lookup("apps", "v1", "deployments")
//	if !ok || !r.HasSubresource("scale") {
//		// 404
//	}
//	for _, g := range cat.Groups() {
//		// one APIGroup per g, preferred version g.Versions[0]
//	}
package resources
