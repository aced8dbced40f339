package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// logServer answers pods/log as the API server does when it reaches a
// kubelet (200 with the lines) or not (503 Status); no kubelet runs in
// the package's tests, so this stands in for the API's log proxy only.
func logServer(t *testing.T, fn func(w http.ResponseWriter, r *http.Request)) (kubernetes.Interface, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fn(w, r)
	}))
	t.Cleanup(srv.Close)
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return cs, &calls
}

func logPod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name)}}
}

func TestLogCache_previousRun(t *testing.T) {
	cs, calls := logServer(t, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/api/v1/namespaces/shop/pods/api-1/log" || q.Get("previous") != "true" || q.Get("container") != "api" ||
			q.Get("tailLines") != "20" || q.Get("limitBytes") == "" {
			t.Errorf("request %s", r.URL)
		}
		_, _ = w.Write([]byte("starting\npanic: " + strings.Repeat("x", 1000) + "\n"))
	})
	c := &logCache{client: cs, lines: 20}
	b := c.budget(t.Context())
	defer b.done()
	lines, msg := b.get(logPod("api-1"), "api", 3)
	if msg != "" || len(lines) != 2 || lines[0] != "starting" || len(lines[1]) > logMaxLine+len("…") {
		t.Fatalf("lines %q, msg %q", lines, msg)
	}
	// The same run again is served from the cache.
	if lines, _ = b.get(logPod("api-1"), "api", 3); len(lines) != 2 || calls.Load() != 1 {
		t.Errorf("second read: %q, %d requests", lines, calls.Load())
	}
}

func TestLogCache_noKubelet(t *testing.T) {
	cs, calls := logServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no kubelet client is configured","reason":"ServiceUnavailable","code":503}`))
	})
	c := &logCache{client: cs, lines: 20}
	b := c.budget(t.Context())
	defer b.done()
	lines, msg := b.get(logPod("api-1"), "api", 1)
	if lines != nil || !strings.Contains(msg, "logs unavailable: no kubelet serves this pod's logs") {
		t.Errorf("lines %q, msg %q", lines, msg)
	}
	// A page reads at most maxLogFetches containers' logs.
	for i := range maxLogFetches + 3 {
		_, msg = b.get(logPod("p"+string(rune('a'+i))), "c", 0)
	}
	if !strings.Contains(msg, "too many crash-looping containers") || calls.Load() != maxLogFetches {
		t.Errorf("after %d reads: %q", calls.Load(), msg)
	}
}
