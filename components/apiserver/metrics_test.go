package apiserver

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"kiln.dev/kiln/components/store"
)

// newMetricsServer is a Server whose handler is never served: only its
// catalog and instrument are used.
func newMetricsServer(t *testing.T, reg prometheus.Registerer) *Server {
	t.Helper()
	s, err := New(Config{Store: new(store.Store), TLS: &tls.Certificate{}, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRequestMetrics_labels(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newMetricsServer(t, reg)
	h := s.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = w.Write([]byte("{}"))
	}))
	tests := []struct {
		method, target string
		verb, resource string
		code           string
		observed       bool
	}{
		{"GET", "/api/v1/namespaces/default/pods", "list", "pods", "200", true},
		{"GET", "/api/v1/namespaces/default/pods/web", "get", "pods", "200", true},
		{"GET", "/api/v1/pods", "list", "pods", "200", true},
		{"POST", "/api/v1/namespaces/default/pods", "create", "pods", "201", true},
		{"PUT", "/api/v1/namespaces/default/pods/web/status", "update", "pods/status", "200", true},
		{"PATCH", "/apis/apps/v1/namespaces/default/deployments/web/scale", "patch", "deployments/scale", "200", true},
		{"DELETE", "/apis/apps/v1/namespaces/default/deployments", "deletecollection", "deployments", "200", true},
		{"DELETE", "/api/v1/namespaces/shop", "delete", "namespaces", "200", true},
		{"PUT", "/api/v1/namespaces/shop/finalize", "update", "namespaces/finalize", "200", true},
		{"GET", "/apis/gitops.kiln.dev/v1alpha1/sources/shop", "get", "sources", "200", true},
		{"GET", "/api/v1/namespaces/default/made-up-things/x", "get", "other", "200", true},
		{"GET", "/apis", "get", "", "200", true},
		{"GET", "/api/v1/namespaces/default/pods?watch=true", "", "", "", false},
		{"GET", "/api/v1/watch/pods", "", "", "", false},
		{"GET", "/api/v1/namespaces/default/pods/web/log?follow=true", "", "", "", false},
		{"GET", "/api/v1/namespaces/default/pods/web/log", "get", "pods/log", "200", true},
	}
	for _, tc := range tests {
		before, totalBefore := sampleCount(t, reg, tc.verb, tc.resource, tc.code), sampleCount(t, reg, "*", "*", "*")
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.target, nil))
		after, totalAfter := sampleCount(t, reg, tc.verb, tc.resource, tc.code), sampleCount(t, reg, "*", "*", "*")
		if tc.observed && after != before+1 {
			t.Errorf("%s %s: not observed as {verb=%q, resource=%q, code=%q}", tc.method, tc.target, tc.verb, tc.resource, tc.code)
		}
		if !tc.observed && totalAfter != totalBefore {
			t.Errorf("%s %s: a long-running request was observed", tc.method, tc.target)
		}
	}
}

// TestRequestMetrics_cheap keeps the middleware allocation-free on the
// hot path once an observer exists.
func TestRequestMetrics_cheap(t *testing.T) {
	s := newMetricsServer(t, prometheus.NewRegistry())
	h := s.instrument(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
	req := httptest.NewRequest(http.MethodGet, "/api/v1/namespaces/default/pods/web", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if allocs := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); allocs > 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}

func TestRequestMetrics_sharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := newMetricsServer(t, reg), newMetricsServer(t, reg)
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	a.instrument(noop).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/pods", nil))
	b.instrument(noop).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/v1/pods", nil))
	if n := sampleCount(t, reg, "list", "pods", "200"); n < 2 {
		t.Errorf("second server's requests not in the shared histogram: %d", n)
	}
	if s := newMetricsServer(t, nil); s.instrument(noop) == nil {
		t.Error("no handler without metrics")
	}
}

// sampleCount is the histogram's count for one label set; "*" matches
// any value.
func sampleCount(t *testing.T, reg *prometheus.Registry, verb, resource, code string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() != "kiln_apiserver_request_duration_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			match := func(name, want string) bool { return want == "*" || got[name] == want }
			if match("verb", verb) && match("resource", resource) && match("code", code) {
				n += m.Histogram.GetSampleCount()
			}
		}
	}
	return n
}
