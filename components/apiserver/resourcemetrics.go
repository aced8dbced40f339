package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// The resource metrics API (metrics.k8s.io/v1beta1), which kubectl top
// reads. In kube, metrics-server serves it through the aggregator from
// what it scrapes off the kubelets; kiln's API server serves it itself,
// asking every node's kubelet (/stats/resource) when a request comes.
// A node whose kubelet does not answer is left out, as metrics-server
// leaves out what it could not scrape.

const (
	metricsGroup      = "metrics.k8s.io"
	metricsAPIVersion = metricsGroup + "/v1beta1"
	// metricsTimeout bounds the wait for the kubelets.
	metricsTimeout = 5 * time.Second
)

// kubeletMetrics is what a kubelet's /stats/resource answers.
type kubeletMetrics struct {
	Node metricsv1beta1.NodeMetrics  `json:"node"`
	Pods []metricsv1beta1.PodMetrics `json:"pods"`
}

// handleResourceMetrics serves get and list of nodes and pods; a
// labelSelector selects by the labels of the nodes or pods themselves.
func (s *Server) handleResourceMetrics(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeError(w, badRequest("labelSelector: %v", err))
		return
	}
	nodes, err := s.listObjects(r.Context(), gvrKey{"", "v1", "nodes"}, "")
	if err != nil {
		writeError(w, err)
		return
	}
	got := s.scrapeKubelets(r.Context(), nodes)
	if res.Name == "nodes" {
		list := &metricsv1beta1.NodeMetricsList{TypeMeta: metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: metricsAPIVersion}}
		for _, o := range nodes {
			n := o.(*corev1.Node)
			m, ok := got[n.Name]
			if !ok || (ri.name != "" && n.Name != ri.name) || !sel.Matches(labels.Set(n.Labels)) || m.Node.Timestamp.IsZero() {
				continue
			}
			nm := m.Node
			nm.TypeMeta = metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: metricsAPIVersion}
			nm.Name, nm.Labels = n.Name, n.Labels
			list.Items = append(list.Items, nm)
		}
		writeMetrics(w, res, ri.name, list, list.Items)
		return
	}

	// Pods: the metrics carry the pods' labels, as metrics-server's do,
	// and only pods that still exist count.
	pods, err := s.listObjects(r.Context(), gvrKey{"", "v1", "pods"}, ri.namespace)
	if err != nil {
		writeError(w, err)
		return
	}
	podLabels := map[string]map[string]string{}
	for _, o := range pods {
		p := o.(*corev1.Pod)
		podLabels[p.Namespace+"/"+p.Name] = p.Labels
	}
	list := &metricsv1beta1.PodMetricsList{TypeMeta: metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: metricsAPIVersion}}
	for _, m := range got {
		for _, pm := range m.Pods {
			l, ok := podLabels[pm.Namespace+"/"+pm.Name]
			if !ok || (ri.name != "" && pm.Name != ri.name) || !sel.Matches(labels.Set(l)) {
				continue
			}
			pm.TypeMeta = metav1.TypeMeta{Kind: "PodMetrics", APIVersion: metricsAPIVersion}
			pm.Labels = l
			slices.SortFunc(pm.Containers, func(a, b metricsv1beta1.ContainerMetrics) int { return strings.Compare(a.Name, b.Name) })
			list.Items = append(list.Items, pm)
		}
	}
	slices.SortFunc(list.Items, func(a, b metricsv1beta1.PodMetrics) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	writeMetrics(w, res, ri.name, list, list.Items)
}

// writeMetrics answers a list, or for a get of name its one item (404
// when there is none).
func writeMetrics[T any](w http.ResponseWriter, res *resource, name string, list any, items []T) {
	if name == "" {
		writeJSON(w, http.StatusOK, list)
		return
	}
	if len(items) == 0 {
		writeError(w, apierrors.NewNotFound(res.gr, name))
		return
	}
	writeJSON(w, http.StatusOK, &items[0])
}

// scrapeKubelets asks every node's kubelet for its metrics, at once, and
// returns those that answered by node name.
func (s *Server) scrapeKubelets(ctx context.Context, nodes []runtime.Object) map[string]kubeletMetrics {
	out := map[string]kubeletMetrics{}
	if s.cfg.KubeletClient == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, o := range nodes {
		n := o.(*corev1.Node)
		wg.Go(func() {
			m, err := s.scrapeKubelet(ctx, n)
			if err != nil {
				s.log.Debug("resource metrics", "node", n.Name, "err", err)
				return
			}
			mu.Lock()
			out[n.Name] = m
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (s *Server) scrapeKubelet(ctx context.Context, n *corev1.Node) (kubeletMetrics, error) {
	var m kubeletMetrics
	u, err := nodeKubeletURL(n)
	if err != nil {
		return m, err
	}
	u.Path = "/stats/resource"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return m, err
	}
	resp, err := s.cfg.KubeletClient.Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return m, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, maxBodyBytes)).Decode(&m)
	return m, err
}
