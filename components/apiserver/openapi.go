package apiserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// handleOpenAPI serves a minimal OpenAPI v3: per group-version, one PATCH
// operation per resource carrying its GVK and the fieldValidation
// parameter. That is what kubectl apply/create need to send
// fieldValidation=Strict instead of validating client-side (see
// KUBE-API-CONTRACT.md §7). v2 is not served; kubectl tolerates its 404.
func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/openapi/v3")
	if path == r.URL.Path {
		writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
		return
	}
	if path == "" || path == "/" {
		paths := map[string]any{}
		for _, gv := range s.groupVersions() {
			doc, _ := json.Marshal(s.openAPIDoc(gv))
			sum := sha256.Sum256(doc)
			p := gvPath(gv)
			paths[p] = map[string]string{"serverRelativeURL": "/openapi/v3/" + p + "?hash=" + strings.ToUpper(hex.EncodeToString(sum[:16]))}
		}
		writeJSON(w, http.StatusOK, map[string]any{"paths": paths})
		return
	}
	for _, gv := range s.groupVersions() {
		if "/"+gvPath(gv) == path {
			w.Header().Set("Cache-Control", "public, immutable")
			writeJSON(w, http.StatusOK, s.openAPIDoc(gv))
			return
		}
	}
	writeError(w, apierrors.NewNotFound(schema.GroupResource{}, r.URL.Path))
}

func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "api/" + gv.Version
	}
	return "apis/" + gv.Group + "/" + gv.Version
}

func (s *Server) groupVersions() []schema.GroupVersion {
	var out []schema.GroupVersion
	for _, g := range s.catalog.Groups() {
		for _, v := range g.Versions {
			out = append(out, schema.GroupVersion{Group: g.Group, Version: v})
		}
	}
	return out
}

func (s *Server) openAPIDoc(gv schema.GroupVersion) map[string]any {
	paths := map[string]any{}
	for _, res := range s.catalog.All() {
		if res.GroupVersion() != gv {
			continue
		}
		op := map[string]any{
			"x-kubernetes-group-version-kind": map[string]string{"group": res.Group, "version": res.Version, "kind": res.Kind},
			"parameters":                      []any{map[string]any{"name": "fieldValidation", "in": "query", "schema": map[string]string{"type": "string"}}},
			"responses":                       map[string]any{"200": map[string]string{"description": "OK"}},
		}
		p := "/" + gvPath(gv) + "/" + res.Name + "/{name}"
		if res.Namespaced {
			p = "/" + gvPath(gv) + "/namespaces/{namespace}/" + res.Name + "/{name}"
		}
		paths[p] = map[string]any{"patch": op}
	}
	return map[string]any{
		"openapi":    "3.0.0",
		"info":       map[string]string{"title": "Kubernetes", "version": "v1.32.0"},
		"paths":      paths,
		"components": map[string]any{"schemas": map[string]any{}},
	}
}
