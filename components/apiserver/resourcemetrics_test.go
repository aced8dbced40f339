package apiserver_test

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"kiln.dev/kiln/components/testenv"
)

// TestResourceMetrics_discoveryAndEmpty: metrics.k8s.io/v1beta1 is in
// discovery with nodes and pods (get, list), as kubectl top looks for it;
// with no kubelet to ask, lists are empty and a get is 404, and writes are
// refused. The demo test (cmd/kiln) reads real usage through kubectl top.
func TestResourceMetrics_discoveryAndEmpty(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	rl, err := env.Clientset.Discovery().ServerResourcesForGroupVersion("metrics.k8s.io/v1beta1")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, r := range rl.APIResources {
		kinds[r.Name] = r.Kind
		if len(r.Verbs) != 2 || r.Verbs[0] != "get" || r.Verbs[1] != "list" {
			t.Errorf("%s verbs %v, want get and list", r.Name, r.Verbs)
		}
	}
	if kinds["nodes"] != "NodeMetrics" || kinds["pods"] != "PodMetrics" {
		t.Fatalf("metrics.k8s.io/v1beta1 resources %v", kinds)
	}
	rc := env.Clientset.Discovery().RESTClient()
	var nodes metricsv1beta1.NodeMetricsList
	if err := rc.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").Do(ctx).Into(&nodes); err != nil {
		t.Fatal(err)
	}
	if nodes.Kind != "NodeMetricsList" || len(nodes.Items) != 0 {
		t.Errorf("node metrics without kubelets: %+v", nodes)
	}
	var pods metricsv1beta1.PodMetricsList
	if err := rc.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods").Do(ctx).Into(&pods); err != nil {
		t.Fatal(err)
	}
	if pods.Kind != "PodMetricsList" || len(pods.Items) != 0 {
		t.Errorf("pod metrics without kubelets: %+v", pods)
	}
	err = rc.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes/nowhere").Do(ctx).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("get of a node without metrics: %v, want NotFound", err)
	}
	err = rc.Delete().AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/x").Do(ctx).Error()
	if !apierrors.IsMethodNotSupported(err) {
		t.Errorf("delete of pod metrics: %v, want MethodNotSupported", err)
	}
	if err := rc.Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").Param("labelSelector", "a in (").Do(ctx).Error(); !apierrors.IsBadRequest(err) {
		t.Errorf("a bad labelSelector: %v, want BadRequest", err)
	}
}
