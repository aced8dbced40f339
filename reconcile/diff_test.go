package reconcile

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestFieldDiffs(t *testing.T) {
	obj := func(m map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: m} }
	secret := func(password, applied string) *unstructured.Unstructured {
		return obj(map[string]any{"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
			"metadata": map[string]any{"name": "db", "namespace": "shop", "resourceVersion": password,
				"annotations": map[string]any{
					"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"` + password + `"}}`,
					AnnotationLastApplied:                              applied,
				}},
			"data": map[string]any{"password": base64.StdEncoding.EncodeToString([]byte(password))}})
	}
	tests := []struct {
		name       string
		live, want *unstructured.Unstructured
		diffs      []FieldDiff
	}{
		{"server-set fields and the revision do not count",
			obj(map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"resourceVersion": "1", "generation": int64(1),
				"managedFields": []any{"a"}, "annotations": map[string]any{AnnotationRevision: "r1"}}, "status": map[string]any{"x": "y"}}),
			obj(map[string]any{"kind": "ConfigMap", "metadata": map[string]any{"resourceVersion": "2", "generation": int64(2),
				"annotations": map[string]any{AnnotationRevision: "r2"}}}),
			nil},
		{"scalars, nested maps, lists and odd keys",
			obj(map[string]any{"spec": map[string]any{"replicas": int64(2), "list": []any{"a", "b"}},
				"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "web"}}}),
			obj(map[string]any{"spec": map[string]any{"replicas": int64(3), "list": []any{"a"}, "new": map[string]any{"x": true}},
				"metadata": map[string]any{}}),
			[]FieldDiff{
				{Field: `metadata.labels["app.kubernetes.io/name"]`, Live: `"web"`},
				{Field: "spec.list[1]", Live: `"b"`},
				{Field: "spec.new.x", Desired: "true"},
				{Field: "spec.replicas", Live: "2", Desired: "3"},
			}},
		{"last-applied alone is reported, redacted",
			obj(map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationLastApplied: `{"a":1}`}}}),
			obj(map[string]any{"metadata": map[string]any{"annotations": map[string]any{AnnotationLastApplied: `{"a":2}`}}}),
			[]FieldDiff{{Field: `metadata.annotations["gitops.kiln.dev/last-applied"]`, Live: redactedValue, Desired: redactedValue, Redacted: true}}},
		{"secret values never appear",
			secret("canary-old", "sha256:1"), secret("canary-new", "sha256:2"),
			[]FieldDiff{
				{Field: "data.password", Live: redactedValue, Desired: redactedValue, Redacted: true},
				{Field: `metadata.annotations["kubectl.kubernetes.io/last-applied-configuration"]`, Live: redactedValue, Desired: redactedValue, Redacted: true},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := fieldDiffs(tc.live, tc.want)
			if !slices.Equal(got, tc.diffs) {
				t.Fatalf("got %+v\nwant %+v", got, tc.diffs)
			}
			for _, d := range got {
				if strings.Contains(d.Live+d.Desired, "canary") || strings.Contains(d.Live+d.Desired, "Y2FuYXJ5") {
					t.Fatalf("secret value in %+v", d)
				}
			}
		})
	}
}
