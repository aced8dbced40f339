package reconcile_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/dynamic"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/dir"
)

// scriptedSource hands the reconciler the results a test sends it, one
// at a time: when send returns, the reconciler has taken the result, so
// every result before it has been handled.
type scriptedSource struct{ results chan sources.Result }

func (s *scriptedSource) Run(ctx context.Context, out chan<- sources.Result) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-s.results:
			select {
			case out <- r:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (s *scriptedSource) Trigger() {}

func (s *scriptedSource) send(t *testing.T, r sources.Result) {
	t.Helper()
	select {
	case s.results <- r:
	case <-t.Context().Done():
		t.Fatal("test ended while sending a result")
	}
}

// TestReconciler_fetchFailedHistory checks that a source's read failure
// is a history record (no revision, the error, the file, a start time),
// once per distinct error: the same error again, as a poll that keeps
// failing sends it, adds nothing; another error, or the same one after a
// sync, does.
func TestReconciler_fetchFailedHistory(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	src := &scriptedSource{results: make(chan sources.Result)}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: env.RESTConfig,
		Sources: []reconcile.SourceConfig{{Name: "demo", Spec: reconcile.SourceSpec{Kind: "dir", Path: "/nonexistent", Namespace: "default"}, Fetcher: src}}})
	if err != nil {
		t.Fatal(err)
	}
	runReconciler(t, rec)
	s := &syncEnv{env: env, kube: env.Clientset, dyn: dynamic.NewForConfigOrDie(env.RESTConfig)}

	symlink := &dir.FileError{Path: "app/link.yaml", Err: errors.New("symlink points outside the root")}
	oversize := &dir.FileError{Path: "big.yaml", Err: fmt.Errorf("larger than %d bytes", sources.MaxFileBytes)}
	snap := &sources.Snapshot{Source: "demo", Revision: "sha256:one", Files: []sources.File{
		{Path: "cm.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fetch-history\n")},
	}}

	// The same failure three times, then another: two records. The
	// snapshot after them is only taken once both were handled.
	for range 3 {
		src.send(t, sources.Result{Err: symlink})
	}
	src.send(t, sources.Result{Err: oversize})
	src.send(t, sources.Result{Snapshot: snap})
	var h []reconcile.SyncRecord
	eventually(t, "synced after the failures", func() string {
		st := s.source(t)
		h = st.Status.History
		if !meta.IsStatusConditionTrue(st.Status.Conditions, reconcile.ConditionReady) || len(h) == 0 || h[0].Revision != snap.Revision {
			return fmt.Sprintf("history %+v", h)
		}
		return ""
	})
	if len(h) != 3 {
		t.Fatalf("history has %d records, want 3 (sync, oversize, symlink): %+v", len(h), h)
	}
	checkFetchRecord(t, h[1], oversize, "big.yaml")
	checkFetchRecord(t, h[2], symlink, "app/link.yaml")
	if h[1].Start.Before(&h[2].Start) {
		t.Errorf("records out of order: %v after %v", h[2].Start, h[1].Start)
	}

	// The first error again after a good sync is news: one more record,
	// and the last good revision stays applied.
	src.send(t, sources.Result{Err: symlink})
	src.send(t, sources.Result{Err: symlink})
	eventually(t, "a record for the failure after the sync", func() string {
		st := s.source(t)
		h = st.Status.History
		if len(h) != 4 || meta.IsStatusConditionTrue(st.Status.Conditions, reconcile.ConditionReady) {
			return fmt.Sprintf("history %+v", h)
		}
		if st.Status.LastAppliedRevision != snap.Revision {
			return "last applied " + st.Status.LastAppliedRevision
		}
		return ""
	})
	checkFetchRecord(t, h[0], symlink, "app/link.yaml")
	// Handled once the next result is taken: still four records.
	src.send(t, sources.Result{Snapshot: snap})
	eventually(t, "synced again", func() string {
		h = s.source(t).Status.History
		if len(h) != 5 || h[0].Revision != snap.Revision || h[1].Revision != "" {
			return fmt.Sprintf("history %+v", h)
		}
		return ""
	})
}

func checkFetchRecord(t *testing.T, r reconcile.SyncRecord, err error, file string) {
	t.Helper()
	if r.Revision != "" || r.Error != err.Error() || r.File != file || r.Start.IsZero() ||
		r.Created+r.Configured+r.Unchanged+r.Pruned != 0 || !strings.Contains(r.Error, file) {
		t.Errorf("fetch record %+v, want no revision, error %q, file %q and a start", r, err, file)
	}
}
