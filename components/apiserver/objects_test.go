package apiserver

import (
	"encoding/json"
	"net/http/httptest"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"kiln.dev/kiln/components/apiserver/resources"
	"kiln.dev/kiln/components/store"
)

func TestWithResourceVersion(t *testing.T) {
	pods := newResource(mustResource(t, "", "v1", "pods"))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", ResourceVersion: "9"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	data, err := pods.encodeStored(pod)
	if err != nil {
		t.Fatal(err)
	}
	if pod.ResourceVersion != "9" {
		t.Fatalf("encodeStored changed the caller's resourceVersion to %q", pod.ResourceVersion)
	}
	sources := newResource(mustResource(t, "gitops.kiln.dev", "v1alpha1", "sources"))
	u := &unstructured.Unstructured{Object: map[string]any{
		// A nested "metadata" key sorts before the top-level one in a
		// plain map encoding; the stored form must still put the
		// object's own metadata first.
		"aaa":  map[string]any{"metadata": map[string]any{"x": "y"}},
		"spec": map[string]any{"path": "/x"},
	}}
	u.SetName("s")
	udata, err := sources.encodeStored(u)
	if err != nil {
		t.Fatal(err)
	}
	emptyMeta := []byte(`{"kind":"X","apiVersion":"v1","metadata":{}}`)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"typed", data, "p"},
		{"unstructured", udata, "s"},
		{"empty metadata", emptyMeta, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := withResourceVersion(tc.data, 42)
			var got struct {
				Metadata struct {
					Name            string `json:"name"`
					ResourceVersion string `json:"resourceVersion"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("invalid JSON %s: %v", out, err)
			}
			if got.Metadata.ResourceVersion != "42" || got.Metadata.Name != tc.want {
				t.Fatalf("got %+v from %s", got.Metadata, out)
			}
		})
	}
	obj, err := sources.decodeStored(store.KV{Key: "k", Value: udata, ModRevision: 7})
	if err != nil {
		t.Fatal(err)
	}
	if got := obj.(*unstructured.Unstructured); got.GetResourceVersion() != "7" || got.Object["spec"].(map[string]any)["path"] != "/x" {
		t.Fatalf("decodeStored: %v", got.Object)
	}
}

func TestParseResourcePath(t *testing.T) {
	tests := []struct {
		method, path string
		want         requestInfo
		ok           bool
	}{
		{"GET", "/api/v1/pods", requestInfo{version: "v1", resource: "pods", verb: "list"}, true},
		{"GET", "/api/v1/namespaces/ns/pods/p/log", requestInfo{version: "v1", namespace: "ns", resource: "pods", name: "p", subresource: "log", verb: "get"}, true},
		{"GET", "/api/v1/namespaces/ns", requestInfo{version: "v1", resource: "namespaces", name: "ns", verb: "get"}, true},
		{"PUT", "/api/v1/namespaces/ns/finalize", requestInfo{version: "v1", resource: "namespaces", name: "ns", subresource: "finalize", verb: "update"}, true},
		{"GET", "/apis/apps/v1/namespaces/ns/deployments?watch=true", requestInfo{group: "apps", version: "v1", namespace: "ns", resource: "deployments", verb: "watch"}, true},
		{"DELETE", "/apis/apps/v1/namespaces/ns/deployments", requestInfo{group: "apps", version: "v1", namespace: "ns", resource: "deployments", verb: "deletecollection"}, true},
		{"PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/scale", requestInfo{group: "apps", version: "v1", namespace: "ns", resource: "deployments", name: "d", subresource: "scale", verb: "patch"}, true},
		{"GET", "/apis/apps/v1/namespaces/ns/deployments/d/scale/extra", requestInfo{}, false},
		{"GET", "/apis/apps", requestInfo{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			got, ok := parseResourcePath(r)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Fatalf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func mustResource(t *testing.T, group, version, name string) resources.Resource {
	t.Helper()
	r, ok := resources.NewCatalog(resources.Builtin()).Lookup(group, version, name)
	if !ok {
		t.Fatalf("no resource %s/%s %s", group, version, name)
	}
	return r
}
