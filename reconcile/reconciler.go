package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/util/retry"

	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/dir"
	"kiln.dev/kiln/sources/git"
)

// How often health is re-judged from the informer caches (no API calls).
const (
	healthInterval       = 500 * time.Millisecond
	healthIntervalSteady = 5 * time.Second
)

// SourceConfig is one source to reconcile: its Source object's name and
// spec, and the fetcher that produces its snapshots.
type SourceConfig struct {
	Name    string
	Spec    SourceSpec
	Fetcher sources.Source
}

// Config configures the reconciler.
type Config struct {
	// RESTConfig reaches the API server; the reconciler is a client like
	// any other.
	RESTConfig *rest.Config
	Sources    []SourceConfig
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
}

// Reconciler syncs every source's snapshots into the cluster.
type Reconciler struct {
	cfg    Config
	log    *slog.Logger
	dyn    dynamic.Interface
	kube   kubernetes.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper

	mu      sync.Mutex
	started bool
}

// New validates cfg and builds the clients. It starts nothing.
func New(cfg Config) (*Reconciler, error) {
	if cfg.RESTConfig == nil {
		return nil, errors.New("reconcile: restConfig is required")
	}
	seen := map[string]bool{}
	for i, s := range cfg.Sources {
		if s.Name == "" || s.Fetcher == nil {
			return nil, fmt.Errorf("reconcile: sources[%d]: name and fetcher are required", i)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("reconcile: sources[%d]: duplicate name %q", i, s.Name)
		}
		seen[s.Name] = true
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dyn, err := dynamic.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg.RESTConfig)
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	return &Reconciler{
		cfg: cfg, log: cfg.Logger.With("component", "reconcile"),
		dyn: dyn, kube: kube,
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
	}, nil
}

// Run syncs every source until ctx is done. It returns nil on a clean stop.
func (r *Reconciler) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("reconcile: Run called twice")
	}
	r.started = true
	r.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(r.cfg.Sources))
	for _, sc := range r.cfg.Sources {
		l := &sourceLoop{r: r, name: sc.Name, spec: sc.Spec, fetcher: sc.Fetcher,
			log: r.log.With("source", sc.Name), drift: make(chan string, 64),
			applier: &applier{dyn: r.dyn, mapper: r.mapper, source: sc.Name}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.run(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(func() []error {
		var out []error
		for e := range errs {
			out = append(out, e)
		}
		return out
	}()...)
}

// scope answers Render's question from discovery; a kind not found is
// looked up once more after refreshing discovery (a CRD just applied).
func (r *Reconciler) scope(gvk schema.GroupVersionKind) (namespaced, known bool) {
	m, err := r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil && meta.IsNoMatchError(err) {
		r.mapper.Reset()
		m, err = r.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return false, false
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, true
}

// sourceLoop owns one source: its fetcher's results, its syncs, its
// status and drift correction.
type sourceLoop struct {
	r       *Reconciler
	name    string
	spec    SourceSpec
	fetcher sources.Source
	applier *applier
	log     *slog.Logger
	// drift receives keys of managed objects someone else changed.
	drift chan string

	// Owned by run's goroutine.
	last      *sources.Snapshot
	objects   map[string]Object
	appliedRV map[string]string
	inventory []InventoryEntry
	uid       string

	// appliedHash maps each object of the last good sync to its
	// contentHash; sync skips those whose hash has not changed.
	appliedHash map[string]string
	// parsed keeps the files of the last Render parsed.
	parsed parseCache
	// rollback is rollback.go's memory of the last healthy snapshot.
	rollback rollbackState
}

func (l *sourceLoop) run(ctx context.Context) error {
	if err := l.ensureSource(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		// Said at once: Run reports errors only when every source ends.
		l.log.Error("source stopped", "err", err)
		return fmt.Errorf("reconcile: source %s: %w", l.name, err)
	}
	results := make(chan sources.Result)
	fetchDone := make(chan error, 1)
	go func() { fetchDone <- l.fetcher.Run(ctx, results) }()
	var watchers sync.WaitGroup
	defer watchers.Wait()
	var w *watches
	defer func() {
		if w != nil {
			w.stop()
		}
	}()
	// Health is read from the informer caches: every healthInterval while
	// something is not healthy, every healthIntervalSteady otherwise.
	healthTimer := time.NewTimer(healthInterval)
	defer healthTimer.Stop()
	var lastHealth Health
	for {
		select {
		case <-ctx.Done():
			<-fetchDone
			return nil
		case err := <-fetchDone:
			if ctx.Err() != nil {
				return nil
			}
			l.log.Error("source stopped", "err", err)
			return fmt.Errorf("reconcile: source %s: %w", l.name, err)
		case res := <-results:
			if res.Err != nil {
				l.fetchFailed(ctx, res.Err)
				continue
			}
			if w != nil {
				l.noteHealthy(l.health(w))
			}
			if l.applySnapshot(ctx, res.Snapshot) {
				if w != nil {
					w.stop()
				}
				w = l.startWatches(ctx, &watchers)
				healthTimer.Reset(healthInterval)
			}
		case key := <-l.drift:
			l.correctDrift(ctx, key)
		case <-healthTimer.C:
			h := l.health(w)
			if w != nil && l.noteHealth(ctx, h) {
				// Rolled back: follow the inventory applied again.
				w.stop()
				w = l.startWatches(ctx, &watchers)
				healthTimer.Reset(healthInterval)
				continue
			}
			if (h != lastHealth || l.unrecorded()) && w != nil {
				lastHealth = h
				l.writeStatus(ctx, func(st *SourceStatus, gen int64) {
					reason := h.Status
					setCondition(st, ConditionHealthy, h.Status == HealthHealthy, reason, h.Message, gen)
					l.recordHealthy(st)
				})
			}
			next := healthInterval
			if h.Status == HealthHealthy {
				next = healthIntervalSteady
			}
			healthTimer.Reset(next)
		}
	}
}

// applySnapshot syncs a snapshot and records the outcome. It reports
// whether the inventory changed (drift watches follow it).
func (l *sourceLoop) applySnapshot(ctx context.Context, snap *sources.Snapshot) bool {
	out := l.sync(ctx, snap, l.inventory)
	ok := out.err == nil
	if ok {
		l.last, l.objects, l.inventory, l.appliedRV = snap, out.objects, out.inventory, out.appliedRV
		l.appliedHash = out.hashes
		l.log.Info("synced", "revision", snap.Revision, "created", out.record.Created, "configured", out.record.Configured,
			"unchanged", out.record.Unchanged, "pruned", out.record.Pruned, "ms", out.record.DurationMS)
	} else {
		l.log.Warn("sync failed", "revision", snap.Revision, "err", out.err)
	}
	l.writeStatus(ctx, func(st *SourceStatus, gen int64) {
		l.recordHealthy(st)
		st.LastAttemptedRevision = snap.Revision
		st.History = append([]SyncRecord{out.record}, st.History...)
		if len(st.History) > MaxHistory {
			st.History = st.History[:MaxHistory]
		}
		if ok {
			st.LastAppliedRevision = snap.Revision
			st.LastAppliedCommit = commitOf(snap)
			st.Inventory = out.inventory
			setCondition(st, ConditionReady, true, "Synced", fmt.Sprintf("applied revision %s", snap.Revision), gen)
			setCondition(st, ConditionStalled, false, "Synced", "", gen)
			meta.RemoveStatusCondition(&st.Conditions, ConditionRolledBack)
		} else {
			setCondition(st, ConditionReady, false, "SyncFailed", out.err.Error(), gen)
			setCondition(st, ConditionStalled, true, "SyncFailed", "the last good revision stays applied: "+st.LastAppliedRevision, gen)
		}
	})
	if ok {
		l.event(ctx, corev1.EventTypeNormal, "Synced", fmt.Sprintf("revision %s: %d created, %d configured, %d unchanged, %d pruned",
			snap.Revision, out.record.Created, out.record.Configured, out.record.Unchanged, out.record.Pruned))
	} else {
		l.event(ctx, corev1.EventTypeWarning, "SyncFailed", fmt.Sprintf("revision %s: %v", snap.Revision, out.err))
	}
	return ok
}

func commitOf(snap *sources.Snapshot) *Commit {
	if snap.Commit == nil {
		return nil
	}
	return &Commit{Hash: snap.Commit.Hash, Message: snap.Commit.Message, Author: snap.Commit.Author, Time: metav1.NewTime(snap.Commit.Time)}
}

func (l *sourceLoop) fetchFailed(ctx context.Context, err error) {
	l.log.Warn("fetch failed", "err", err)
	rec := SyncRecord{Start: metav1.Now(), Error: err.Error(), File: fetchErrorFile(err)}
	l.writeStatus(ctx, func(st *SourceStatus, gen int64) {
		// A source that keeps failing the same way (a git server down, polled
		// every interval) is one record, not a history of identical ones.
		if len(st.History) == 0 || st.History[0].Revision != "" || st.History[0].Error != rec.Error {
			st.History = append([]SyncRecord{rec}, st.History...)
			if len(st.History) > MaxHistory {
				st.History = st.History[:MaxHistory]
			}
		}
		setCondition(st, ConditionReady, false, "FetchFailed", err.Error(), gen)
		setCondition(st, ConditionStalled, true, "FetchFailed", "the last good revision stays applied: "+st.LastAppliedRevision, gen)
	})
	l.event(ctx, corev1.EventTypeWarning, "FetchFailed", err.Error())
}

// ensureSource creates or updates the Source object from the config, and
// loads the inventory of the last successful sync from its status.
func (l *sourceLoop) ensureSource(ctx context.Context) error {
	ri := l.r.dyn.Resource(SourceGVR)
	var spec map[string]any
	spec, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&l.spec)
	if err != nil {
		return err
	}
	// The API may be unreachable for a while (a server failing over):
	// keep trying, as every other client of the API does, rather than
	// leave the source unsynced until a restart.
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: math.MaxInt32, Cap: 10 * time.Second}
	return retry.OnError(backoff, func(err error) bool {
		if apierrors.IsInvalid(err) || ctx.Err() != nil {
			return false
		}
		l.log.Warn("cannot record the source yet; retrying", "err", err)
		return true
	}, func() error {
		cur, err := ri.Get(ctx, l.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
			u.SetGroupVersionKind(SourceGVK)
			u.SetName(l.name)
			cur, err = ri.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager})
			if err != nil {
				return err
			}
		} else if err != nil {
			return err
		} else {
			cur.Object["spec"] = spec
			if cur, err = ri.Update(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
				return err
			}
		}
		l.uid = string(cur.GetUID())
		var src Source
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(cur.Object, &src); err == nil {
			l.inventory = src.Status.Inventory
			l.rollback.recorded = src.Status.LastHealthyRevision
		}
		return nil
	})
}

// writeStatus changes the Source's status with fn, retrying conflicts.
func (l *sourceLoop) writeStatus(ctx context.Context, fn func(st *SourceStatus, gen int64)) {
	ri := l.r.dyn.Resource(SourceGVR)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := ri.Get(ctx, l.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var src Source
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(cur.Object, &src); err != nil {
			return err
		}
		fn(&src.Status, cur.GetGeneration())
		src.Status.ObservedGeneration = cur.GetGeneration()
		st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&src.Status)
		if err != nil {
			return err
		}
		cur.Object["status"] = st
		_, err = ri.UpdateStatus(ctx, cur, metav1.UpdateOptions{FieldManager: fieldManager})
		return err
	})
	if err != nil && ctx.Err() == nil {
		l.log.Warn("write source status", "err", err)
	}
}

// event records an Event on the Source (cluster-scoped objects' events
// live in "default", as in kube).
func (l *sourceLoop) event(ctx context.Context, typ, reason, msg string) {
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		// Named like kube's event recorder: object name and a unique suffix.
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", l.name, now.UnixNano()), Namespace: metav1.NamespaceDefault},
		InvolvedObject: corev1.ObjectReference{Kind: SourceGVK.Kind, APIVersion: SourceGVK.GroupVersion().String(),
			Name: l.name, UID: typesUID(l.uid)},
		Reason: reason, Message: truncate(msg, 1024), Type: typ, Count: 1,
		FirstTimestamp: now, LastTimestamp: now, Source: corev1.EventSource{Component: "kiln-sync"},
		ReportingController: "kiln.dev/sync", ReportingInstance: "kiln",
	}
	if _, err := l.r.kube.CoreV1().Events(metav1.NamespaceDefault).Create(ctx, ev, metav1.CreateOptions{}); err != nil && ctx.Err() == nil {
		l.log.Warn("record event", "reason", reason, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// fetchErrorFile is the file a fetch failed on (a symlink out of the
// repo, an oversized file), or "" when the failure is not about one file.
func fetchErrorFile(err error) string {
	var de *dir.FileError
	if errors.As(err, &de) {
		return de.Path
	}
	var ge *git.FileError
	if errors.As(err, &ge) {
		return ge.Path
	}
	return ""
}
