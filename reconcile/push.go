package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/sources"
)

// These methods are what a push to a hosted source asks of the
// reconciler (sources/hosted.Deployer): check a commit before the branch
// moves, wait for its sync, then for its rollout. They run on the push's
// goroutine, beside the source's loop, and share nothing with it but the
// clients: what they know of a sync they read from the API (the Source's
// status, the objects' revision annotations), as any client could.

// Push report limits: a push of a thousand objects lists the first ones.
const (
	maxPushObjects = 50
	maxPushFields  = 4
	maxPushValue   = 40
)

// sourcePollInterval is how often WaitSynced looks for a Source that does
// not exist yet.
const sourcePollInterval = 100 * time.Millisecond

// pushPodKinds are the workloads whose pods a rollout watches for
// crashes; a rollout waits for them and for bare Pods (pushKind).
var (
	pushPodKinds = map[string]bool{"Deployment.apps": true, "StatefulSet.apps": true, "DaemonSet.apps": true, "ReplicaSet.apps": true, "Job.batch": true}
	podsGVR      = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
)

func pushKind(gk string) bool { return pushPodKinds[gk] || gk == "Pod" }

// CheckPush renders snap as the source named source syncs it and sends
// every object through a server-side dry run (Diff), writing nothing. out
// gets one line per object a sync would create, change or prune. The
// error is a *RenderError or a *SyncError naming the file, or
// ErrEmptySnapshot; its text has one problem per line.
func (r *Reconciler) CheckPush(ctx context.Context, source string, snap *sources.Snapshot, out func(string)) error {
	sc, ok := r.sourceConfig(source)
	if !ok {
		return fmt.Errorf("reconcile: unknown source %q", source)
	}
	objs, err := Render(snap, RenderOptions{DefaultNamespace: sc.Spec.Namespace, Scope: memoScope(r.scope)})
	if err != nil {
		return err
	}
	src, err := r.getSource(ctx, source)
	if err != nil {
		return err
	}
	res, err := Diff(ctx, r.cfg.RESTConfig, objs, DiffOptions{Source: source, Revision: snap.Revision,
		Inventory: src.Status.Inventory, Prune: sc.Spec.Prune, AllowEmpty: sc.Spec.AllowEmpty, Mapper: r.mapper})
	if err != nil {
		return err
	}
	if res.Empty() {
		out(fmt.Sprintf("no changes to the %d objects", len(objs)))
		return nil
	}
	n := 0
	line := func(verb string, d DiffObject) {
		n++
		if n > maxPushObjects {
			return
		}
		s := verb + " " + d.Object
		if d.Path != "" {
			s += " (" + d.Path + ")"
		}
		if len(d.Fields) > 0 {
			s += ": " + fieldSummary(d.Fields)
		}
		out(s)
	}
	for _, d := range res.Create {
		line("create", d)
	}
	for _, d := range res.Change {
		line("change", d)
	}
	for _, d := range res.Prune {
		line("prune", d)
	}
	if n > maxPushObjects {
		out(fmt.Sprintf("and %d more", n-maxPushObjects))
	}
	return nil
}

// fieldSummary lists the first fields of a change, with short values.
func fieldSummary(fs []FieldDiff) string {
	var parts []string
	for i, f := range fs {
		if i == maxPushFields {
			parts = append(parts, fmt.Sprintf("and %d more fields", len(fs)-maxPushFields))
			break
		}
		s := f.Field
		if !f.Redacted && len(f.Live) <= maxPushValue && len(f.Desired) <= maxPushValue {
			s += " " + orNone(f.Live) + " → " + orNone(f.Desired)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// WaitSynced blocks until the Source's status records a sync of revision
// that started at or after since, and reports its counts through out. It
// fails with the sync's error (naming the file), or with ctx's.
func (r *Reconciler) WaitSynced(ctx context.Context, source, revision string, since time.Time, out func(string)) error {
	// Sync records carry seconds.
	since = since.Truncate(time.Second)
	rec, err := r.watchSource(ctx, source, func(src *Source) (*SyncRecord, bool) {
		for i := range src.Status.History {
			h := &src.Status.History[i]
			if h.Start.Time.Before(since) {
				break // newest first
			}
			// A snapshot that could not be read is recorded without a
			// revision, with the revision in its error.
			if h.Revision == revision || h.Revision == "" && strings.Contains(h.Error, revision) {
				return h, true
			}
		}
		return nil, false
	})
	if err != nil {
		return err
	}
	if rec.Error != "" {
		return errors.New(rec.Error)
	}
	out(fmt.Sprintf("applied %s in %dms: %d created, %d configured, %d unchanged, %d pruned",
		shortRevision(revision), rec.DurationMS, rec.Created, rec.Configured, rec.Unchanged, rec.Pruned))
	return nil
}

// watchSource reads the Source, and watches it, until found reports a
// result.
func (r *Reconciler) watchSource(ctx context.Context, name string, found func(*Source) (*SyncRecord, bool)) (*SyncRecord, error) {
	ri := r.dyn.Resource(SourceGVR)
	for {
		cur, err := ri.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// The source's loop creates it when it starts; a push right
			// after kiln started may come first.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(sourcePollInterval):
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("read source %s: %w", name, err)
		}
		src, err := toSource(cur)
		if err != nil {
			return nil, err
		}
		if rec, ok := found(src); ok {
			return rec, nil
		}
		w, err := ri.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: cur.GetResourceVersion()})
		if err != nil {
			return nil, fmt.Errorf("watch source %s: %w", name, err)
		}
		rec, ok, err := func() (*SyncRecord, bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil, false, ctx.Err()
				case ev, open := <-w.ResultChan():
					if !open || ev.Type == watch.Error {
						return nil, false, nil // read again and watch anew
					}
					u, isU := ev.Object.(*unstructured.Unstructured)
					if !isU {
						continue
					}
					src, err := toSource(u)
					if err != nil {
						return nil, false, err
					}
					if rec, ok := found(src); ok {
						return rec, true, nil
					}
				}
			}
		}()
		if err != nil || ok {
			return rec, err
		}
	}
}

func toSource(u *unstructured.Unstructured) (*Source, error) {
	var src Source
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		return nil, fmt.Errorf("decode source %s: %w", u.GetName(), err)
	}
	return &src, nil
}

func (r *Reconciler) getSource(ctx context.Context, name string) (*Source, error) {
	u, err := r.dyn.Resource(SourceGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read source %s: %w", name, err)
	}
	return toSource(u)
}

func (r *Reconciler) sourceConfig(name string) (SourceConfig, bool) {
	for _, s := range r.cfg.Sources {
		if s.Name == name {
			return s, true
		}
	}
	return SourceConfig{}, false
}

// shortRevision abbreviates "main@sha1:<40 hex>" to "main@<7 hex>".
func shortRevision(rev string) string {
	branch, hash, ok := strings.Cut(rev, "@sha1:")
	if !ok || len(hash) < 7 {
		return rev
	}
	return branch + "@" + hash[:7]
}

// rolloutTimeout is WaitHealthy's error when ctx's deadline passes: it
// says what was still not healthy, and is a context.DeadlineExceeded.
type rolloutTimeout struct{ msg string }

func (e *rolloutTimeout) Error() string { return e.msg }
func (e *rolloutTimeout) Unwrap() error { return context.DeadlineExceeded }

// rolloutTarget is one workload a rollout waits for.
type rolloutTarget struct {
	gk, kind string
	gvr      schema.GroupVersionResource
	ns, name string
	// pods selects the workload's pods; nil for a Pod itself.
	pods labels.Selector
	// last is the health last reported.
	last Health
}

// WaitHealthy waits until every workload of the source's inventory that
// the sync of revision created or changed (its revision annotation says
// so: kiln leaves the annotation of an unchanged object alone) is
// healthy by Assess's rules, reporting each change of a workload's state
// through out. A workload that turns Degraded, or a new pod of it that
// does (crash looping, image pull failing), fails it at once; so does ctx
// ending, with what was still not healthy.
func (r *Reconciler) WaitHealthy(ctx context.Context, source, revision string, since time.Time, out func(string)) error {
	src, err := r.getSource(ctx, source)
	if err != nil {
		return err
	}
	var targets []*rolloutTarget
	for _, e := range src.Status.Inventory {
		gk := schema.GroupKind{Group: e.Group, Kind: e.Kind}.String()
		if !pushKind(gk) {
			continue
		}
		m, err := r.mapper.RESTMapping(schema.GroupKind{Group: e.Group, Kind: e.Kind}, e.Version)
		if err != nil {
			continue
		}
		ri := r.dyn.Resource(m.Resource).Namespace(e.Namespace)
		live, err := ri.Get(ctx, e.Name, metav1.GetOptions{})
		if err != nil || live.GetAnnotations()[AnnotationRevision] != revision {
			continue
		}
		t := &rolloutTarget{gk: gk, kind: e.Kind, gvr: m.Resource, ns: e.Namespace, name: e.Name}
		if pushPodKinds[gk] {
			if sel, _, _ := unstructured.NestedMap(live.Object, "spec", "selector"); sel != nil {
				var ls metav1.LabelSelector
				if runtime.DefaultUnstructuredConverter.FromUnstructured(sel, &ls) == nil {
					t.pods, _ = metav1.LabelSelectorAsSelector(&ls)
				}
			}
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		out("no workloads to roll out")
		return nil
	}
	since = since.Truncate(time.Second)
	err = r.followRollout(ctx, source, targets, since, out)
	if sc, _ := r.sourceConfig(source); err == nil || sc.Spec.Rollback != RollbackAuto {
		return err
	}
	// With rollback: auto the loop re-applies the last healthy revision
	// once the failed one turns Degraded (a Deployment at its progress
	// deadline); say so if that happens while the pusher waits.
	rec, werr := r.watchSource(ctx, source, func(src *Source) (*SyncRecord, bool) {
		for i := range src.Status.History {
			h := &src.Status.History[i]
			if h.Start.Time.Before(since) {
				break
			}
			if h.RollbackOf == revision {
				return h, true
			}
		}
		return nil, false
	})
	if werr != nil {
		return fmt.Errorf("%w (rollback: auto re-applies the last healthy revision when it turns Degraded, at its progress deadline)", err)
	}
	if rec.Error != "" {
		return fmt.Errorf("rolling back to %s failed: %s", shortRevision(rec.Revision), rec.Error)
	}
	out(fmt.Sprintf("rolled back: re-applied %s, the last healthy revision; the branch still names %s", shortRevision(rec.Revision), shortRevision(revision)))
	return &RolledBackError{Revision: rec.Revision, Err: err}
}

// RolledBackError is WaitHealthy's error when the pushed revision failed
// and the source re-applied the last healthy one.
type RolledBackError struct {
	// Revision is the revision live again.
	Revision string
	// Err is why the pushed revision failed.
	Err error
}

func (e *RolledBackError) Error() string {
	return fmt.Sprintf("rolled back to %s: %v", shortRevision(e.Revision), e.Err)
}

func (e *RolledBackError) Unwrap() error { return e.Err }

// RolledBackTo is Revision, for callers that cannot name this type
// (sources/hosted).
func (e *RolledBackError) RolledBackTo() string { return e.Revision }

// followRollout watches the targets and their pods through informers and
// judges them on every change.
func (r *Reconciler) followRollout(ctx context.Context, source string, targets []*rolloutTarget, since time.Time, out func(string)) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	workloads := dynamicinformer.NewFilteredDynamicSharedInformerFactory(r.dyn, 0, metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.LabelSelector = LabelSource + "=" + source
	})
	stores := map[schema.GroupVersionResource]cache.Store{}
	podStores := map[string]cache.Store{}
	var factories []dynamicinformer.DynamicSharedInformerFactory
	factories = append(factories, workloads)
	for _, t := range targets {
		if stores[t.gvr] == nil {
			inf := workloads.ForResource(t.gvr).Informer()
			_, _ = inf.AddEventHandler(handler)
			stores[t.gvr] = inf.GetStore()
		}
		if t.pods != nil && podStores[t.ns] == nil {
			f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(r.dyn, 0, t.ns, nil)
			inf := f.ForResource(podsGVR).Informer()
			_, _ = inf.AddEventHandler(handler)
			podStores[t.ns] = inf.GetStore()
			factories = append(factories, f)
		}
	}
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	wg.Go(func() {
		<-ctx.Done()
		for _, f := range factories {
			f.Shutdown()
		}
	})
	for _, f := range factories {
		f.WaitForCacheSync(ctx.Done())
	}
	for {
		var waiting *rolloutTarget
		for _, t := range targets {
			h := rolloutHealth(t, stores[t.gvr], podStores[t.ns], since)
			if h != t.last {
				t.last = h
				if h.Status == HealthHealthy {
					out(t.kind + " " + nsName(t.ns, t.name) + ": healthy")
				} else {
					out(h.Message)
				}
			}
			if h.Status == HealthDegraded {
				return errors.New(h.Message)
			}
			if h.Status != HealthHealthy && waiting == nil {
				waiting = t
			}
		}
		if waiting == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &rolloutTimeout{msg: waiting.last.Message}
			}
			return ctx.Err()
		case <-changed:
		}
	}
}

// rolloutHealth judges one target from the caches: the workload by
// Assess, then, while it is not healthy, its pods created since the push,
// any of which failing fails it.
func rolloutHealth(t *rolloutTarget, store, pods cache.Store, since time.Time) Health {
	name := t.kind + " " + nsName(t.ns, t.name)
	key := t.name
	if t.ns != "" {
		key = t.ns + "/" + t.name
	}
	obj, ok, _ := store.GetByKey(key)
	if !ok {
		return Health{HealthProgressing, name + ": not observed yet"}
	}
	h := assess(obj.(*unstructured.Unstructured), nil)
	if h.Status != HealthProgressing || t.pods == nil || pods == nil {
		return h
	}
	for _, o := range pods.List() {
		p, ok := o.(*unstructured.Unstructured)
		if !ok || p.GetCreationTimestamp().Time.Before(since) || !t.pods.Matches(labels.Set(p.GetLabels())) {
			continue
		}
		if ph := podHealth(p, "pod "+nsName(p.GetNamespace(), p.GetName())); ph.Status == HealthDegraded {
			return Health{HealthDegraded, name + ": " + ph.Message}
		}
	}
	return h
}
