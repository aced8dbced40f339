package reconcile

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestInventoryKey_matchesKeyOf checks the direct inventoryKey against
// KeyOf of the object the entry names.
func TestInventoryKey_matchesKeyOf(t *testing.T) {
	for _, e := range []InventoryEntry{
		{Version: "v1", Kind: "ConfigMap", Namespace: "demo", Name: "settings"},
		{Version: "v1", Kind: "Namespace", Name: "demo"},
		{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "demo", Name: "web"},
		{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition", Name: "widgets.example.com"},
		{Group: "example.com", Version: "v1alpha1", Kind: "Widget", Namespace: "a", Name: "w"},
	} {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(schema.GroupVersionKind{Group: e.Group, Version: e.Version, Kind: e.Kind})
		u.SetNamespace(e.Namespace)
		u.SetName(e.Name)
		if got, want := inventoryKey(e), KeyOf(u); got != want {
			t.Errorf("inventoryKey(%+v) = %q, KeyOf = %q", e, got, want)
		}
	}
}

// TestSourceLoop_hashOf checks that a hash is reused only for the very
// object (same map, same path) the last good sync hashed.
func TestSourceLoop_hashOf(t *testing.T) {
	obj := func(v string) Object {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "a", "namespace": "default"}, "data": map[string]any{"v": v}}}
		return Object{Obj: u, Path: "a.yaml"}
	}
	last := obj("1")
	key := KeyOf(last.Obj)
	l := &sourceLoop{objects: map[string]Object{key: last}, appliedHash: map[string]string{key: "recorded"}}
	if got := l.hashOf(key, last); got != "recorded" {
		t.Errorf("same object: hash %q, want the recorded one", got)
	}
	changed := obj("2")
	if got, want := l.hashOf(key, changed), contentHash(changed); got != want {
		t.Errorf("another object of the same key: hash %q, want %q", got, want)
	}
	moved := last
	moved.Path = "b.yaml"
	if got, want := l.hashOf(key, moved), contentHash(moved); got != want {
		t.Errorf("same object at another path: hash %q, want %q", got, want)
	}
	l.appliedHash = nil // a sync that failed after its first write
	if got, want := l.hashOf(key, last), contentHash(last); got != want {
		t.Errorf("no recorded hash: %q, want %q", got, want)
	}
}
