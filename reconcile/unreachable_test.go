package reconcile_test

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/dir"
)

// failingRoundTripper fails the requests for Source objects until
// healed, as an API server that is failing over would.
type failingRoundTripper struct {
	next   http.RoundTripper
	healed *atomic.Bool
	failed *atomic.Int32
}

func (f failingRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if !f.healed.Load() && strings.Contains(r.URL.Path, "/sources") {
		f.failed.Add(1)
		return nil, errors.New("connection refused (test)")
	}
	return f.next.RoundTrip(r)
}

// A source whose Source object cannot be recorded at start (the API is
// unreachable for a few seconds) keeps trying and syncs once it can,
// instead of giving up until the next restart.
func TestReconciler_sourceWaitsForTheAPI(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	d := t.TempDir()
	writeFile(t, d, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: patient, namespace: default}\n")
	src, err := dir.New(dir.Config{Name: "demo", Path: d})
	if err != nil {
		t.Fatal(err)
	}
	var healed atomic.Bool
	var failed atomic.Int32
	rc := rest.CopyConfig(env.RESTConfig)
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return failingRoundTripper{next: rt, healed: &healed, failed: &failed}
	}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: rc, Sources: []reconcile.SourceConfig{{
		Name: "demo", Spec: reconcile.SourceSpec{Kind: "dir", Path: d, Namespace: "default"}, Fetcher: src}}})
	if err != nil {
		t.Fatal(err)
	}
	done := runReconciler(t, rec)
	// Longer than client-go's retry.DefaultBackoff (about 1.6 s in all).
	time.Sleep(3 * time.Second)
	if failed.Load() < 3 {
		t.Fatalf("only %d failed attempts to record the source", failed.Load())
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("reconciler returned while the API was unreachable: %v", err)
	default:
	}
	healed.Store(true)
	eventually(t, "ConfigMap applied once the API answers", func() string {
		if _, err := env.Clientset.CoreV1().ConfigMaps("default").Get(t.Context(), "patient", metav1.GetOptions{}); err != nil {
			return err.Error()
		}
		return ""
	})
}
