package printers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

func source(spec, status map[string]interface{}) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]interface{}{
		"apiVersion": "gitops.kiln.dev/v1alpha1",
		"kind":       "Source",
		"metadata": map[string]interface{}{
			"name":              "main",
			"creationTimestamp": now.Add(-5 * time.Minute).Format(time.RFC3339),
		},
	}}
	if spec != nil {
		u.Object["spec"] = spec
	}
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func TestRow_sources(t *testing.T) {
	runRows(t, "gitops.kiln.dev", "sources", []rowCase{
		{
			name: "ready git source",
			obj: source(map[string]interface{}{"url": "https://git.example.com/cluster.git"}, map[string]interface{}{
				"lastAppliedRevision": "main@sha1:4f2c9a1",
				"conditions": []interface{}{
					map[string]interface{}{"type": "Reconciling", "status": "False"},
					map[string]interface{}{"type": "Ready", "status": "True", "message": "applied revision main@sha1:4f2c9a1"},
				},
			}),
			want: []interface{}{"main", "True", "main@sha1:4f2c9a1", "5m", "https://git.example.com/cluster.git", "applied revision main@sha1:4f2c9a1"},
		},
		{
			name: "failing dir source",
			obj: source(map[string]interface{}{"path": "/srv/cluster"}, map[string]interface{}{
				"conditions": []interface{}{
					map[string]interface{}{"type": "Ready", "status": "False", "message": "deploy.yaml: spec.replicas: invalid"},
				},
			}),
			want: []interface{}{"main", "False", "", "5m", "/srv/cluster", "deploy.yaml: spec.replicas: invalid"},
		},
		{
			name: "typed",
			obj: &typedSource{
				TypeMeta:   metav1.TypeMeta{APIVersion: "gitops.kiln.dev/v1alpha1", Kind: "Source"},
				ObjectMeta: objMeta("main"),
				Spec:       typedSourceSpec{URL: "https://git.example.com/cluster.git"},
			},
			want: []interface{}{"main", "Unknown", "", "5m", "https://git.example.com/cluster.git", ""},
		},
		{
			name: "new",
			obj:  source(nil, nil),
			want: []interface{}{"main", "Unknown", "", "5m", "", ""},
		},
	})
}

// typedSource stands in for a Go type of Source, should kiln grow one.
type typedSource struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              typedSourceSpec `json:"spec"`
}

type typedSourceSpec struct {
	URL string `json:"url,omitempty"`
}

func (s *typedSource) DeepCopyObject() runtime.Object {
	c := *s
	s.ObjectMeta.DeepCopyInto(&c.ObjectMeta)
	return &c
}
