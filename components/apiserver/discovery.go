package apiserver

import (
	"net/http"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/components/apiserver/resources"
)

// aggregatedCT is the Content-Type that tells clients the body is
// aggregated discovery (one request for all of /apis).
const aggregatedCT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func wantsAggregated(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(part, "as=APIGroupDiscoveryList") && strings.Contains(part, "v=v2") && !strings.Contains(part, "v=v2beta1") {
			return true
		}
	}
	return false
}

func (s *Server) handleCoreDiscovery(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		s.writeAggregated(w, true)
		return
	}
	writeJSON(w, http.StatusOK, &metav1.APIVersions{
		TypeMeta:                   metav1.TypeMeta{Kind: "APIVersions"},
		Versions:                   []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: s.Addr()}},
	})
}

func (s *Server) handleGroupsDiscovery(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		s.writeAggregated(w, false)
		return
	}
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	for _, g := range s.catalog.Groups() {
		if g.Group == "" {
			continue
		}
		list.Groups = append(list.Groups, apiGroup(g))
	}
	writeJSON(w, http.StatusOK, list)
}

func apiGroup(g resources.GroupVersions) metav1.APIGroup {
	ag := metav1.APIGroup{Name: g.Group}
	for _, v := range g.Versions {
		ag.Versions = append(ag.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g.Group + "/" + v, Version: v})
	}
	ag.PreferredVersion = ag.Versions[0]
	return ag
}

// handleVersionDiscovery serves /api/v1, /apis/G and /apis/G/V.
func (s *Server) handleVersionDiscovery(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var gv schema.GroupVersion
	switch {
	case len(parts) == 2 && parts[0] == "api":
		gv = schema.GroupVersion{Version: parts[1]}
	case len(parts) == 2 && parts[0] == "apis":
		for _, g := range s.catalog.Groups() {
			if g.Group == parts[1] && g.Group != "" {
				ag := apiGroup(g)
				ag.Kind, ag.APIVersion = "APIGroup", "v1"
				writeJSON(w, http.StatusOK, &ag)
				return
			}
		}
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	case len(parts) == 3 && parts[0] == "apis":
		gv = schema.GroupVersion{Group: parts[1], Version: parts[2]}
	default:
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	found := false
	for _, res := range s.catalog.All() {
		if res.GroupVersion() != gv {
			continue
		}
		found = true
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.Name, SingularName: res.Singular, Namespaced: res.Namespaced, Kind: res.Kind,
			Verbs: res.Verbs, ShortNames: res.ShortNames, Categories: res.Categories,
		})
		for _, sub := range res.Subresources {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: res.Name + "/" + sub.Name, Namespaced: res.Namespaced,
				Group: sub.Group, Version: sub.Version, Kind: sub.Kind, Verbs: sub.Verbs,
			})
		}
	}
	if !found {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// writeAggregated sends the v2 aggregated discovery document of the core
// group (core) or of every other group.
func (s *Server) writeAggregated(w http.ResponseWriter, core bool) {
	list := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"}}
	for _, g := range s.catalog.Groups() {
		if (g.Group == "") != core {
			continue
		}
		gd := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Group}}
		for _, v := range g.Versions {
			vd := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, res := range s.catalog.All() {
				if res.Group != g.Group || res.Version != v {
					continue
				}
				scope := apidiscoveryv2.ScopeCluster
				if res.Namespaced {
					scope = apidiscoveryv2.ScopeNamespace
				}
				rd := apidiscoveryv2.APIResourceDiscovery{
					Resource: res.Name, SingularResource: res.Singular, Scope: scope,
					ResponseKind: &metav1.GroupVersionKind{Group: res.Group, Version: res.Version, Kind: res.Kind},
					Verbs:        res.Verbs, ShortNames: res.ShortNames, Categories: res.Categories,
				}
				for _, sub := range res.Subresources {
					rd.Subresources = append(rd.Subresources, apidiscoveryv2.APISubresourceDiscovery{
						Subresource:  sub.Name,
						ResponseKind: &metav1.GroupVersionKind{Group: sub.Group, Version: sub.Version, Kind: sub.Kind},
						Verbs:        sub.Verbs,
					})
				}
				vd.Resources = append(vd.Resources, rd)
			}
			gd.Versions = append(gd.Versions, vd)
		}
		list.Items = append(list.Items, gd)
	}
	b, err := jsonMarshal(list)
	if err != nil {
		writeError(w, err)
		return
	}
	writeRaw(w, http.StatusOK, aggregatedCT, b)
}
