package reconcile_test

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources"
)

// scope stands in for the API server's discovery.
func scope(gvk schema.GroupVersionKind) (namespaced, known bool) {
	switch gvk.GroupKind() {
	case schema.GroupKind{Kind: "Namespace"}:
		return false, true
	case schema.GroupKind{Kind: "ConfigMap"}, schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		return true, true
	}
	return false, false
}

func ExampleRender() {
	snap := &sources.Snapshot{Files: []sources.File{
		{Path: "README.md", Data: []byte("# not a manifest\n")},
		{Path: "app.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
---
apiVersion: v1
kind: Namespace
metadata:
  name: demo
`)},
	}}
	objs, err := reconcile.Render(snap, reconcile.RenderOptions{DefaultNamespace: "demo", Scope: scope})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, o := range objs {
		fmt.Println(reconcile.KeyOf(o.Obj), o.Path, o.Index)
	}
	// Output:
	// /Namespace//demo app.yaml 1
	// /ConfigMap/demo/settings app.yaml 0
}

func ExampleRenderError() {
	snap := &sources.Snapshot{Files: []sources.File{{Path: "web.yaml", Data: []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: web
          image: busybox
          imagePullPolicyy: Always
`)}}}
	_, err := reconcile.Render(snap, reconcile.RenderOptions{Scope: scope})
	var rerr *reconcile.RenderError
	if errors.As(err, &rerr) {
		// Nothing is applied or pruned; the last good revision keeps running.
		fmt.Println(err)
	}
	// Output:
	// render: 1 problem:
	// web.yaml:12 (document 1): Deployment default/web: spec.template.spec.containers[0].imagePullPolicyy: unknown field
}
