package printers

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// sourceGroup is the API group of kiln's Source kind.
const sourceGroup = "gitops.kiln.dev"

// sourceColumns are the printer columns of sources.gitops.kiln.dev, laid out
// the way a CustomResourceDefinition's additionalPrinterColumns would be.
func sourceColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Ready", Type: "string", Description: "Status of the Ready condition: True, False or Unknown."},
		{Name: "Revision", Type: "string", Description: "The last revision applied from the source."},
		crdAgeColumn(),
		{Name: "URL", Type: "string", Priority: 1, Description: "The git URL or local directory the source reads."},
		{Name: "Message", Type: "string", Priority: 1, Description: "Message of the Ready condition."},
	}
}

// printSource prints a Source. Sources are stored and served unstructured,
// so the fields are read by path; a typed Source is converted first.
func printSource(obj runtime.Object, now time.Time) ([]interface{}, bool) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		if obj == nil {
			return nil, false
		}
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, false
		}
		u = &unstructured.Unstructured{Object: m}
	}
	ready, message := "Unknown", ""
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		cm, ok := c.(map[string]interface{})
		if !ok {
			continue
		}
		if t, _, _ := unstructured.NestedString(cm, "type"); t != "Ready" {
			continue
		}
		if s, _, _ := unstructured.NestedString(cm, "status"); s != "" {
			ready = s
		}
		message, _, _ = unstructured.NestedString(cm, "message")
		break
	}
	revision, _, _ := unstructured.NestedString(u.Object, "status", "lastAppliedRevision")
	url, _, _ := unstructured.NestedString(u.Object, "spec", "url")
	if url == "" {
		url, _, _ = unstructured.NestedString(u.Object, "spec", "path")
	}
	return []interface{}{
		u.GetName(), ready, revision, age(u.GetCreationTimestamp(), now), url, message,
	}, true
}
