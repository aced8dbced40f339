package dashboard

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/reconcile"
)

// handleOverview serves /.
func (d *Dashboard) handleOverview(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	ov := d.overview(r.Context())
	d.render(w, r, http.StatusOK, "overview", page{Title: "Overview", Nav: "overview", Version: v, Body: ov})
}

// handleStatus serves /api/status: the overview as JSON.
func (d *Dashboard) handleStatus(w http.ResponseWriter, r *http.Request) {
	ov := d.overview(r.Context())
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(ov)
}

// sourcePage is /sources/{name}: a Source's spec, conditions and history.
type sourcePage struct {
	Summary    SourceSummary
	Spec       reconcile.SourceSpec
	Conditions []metav1.Condition
	History    []SyncSummary
}

func (d *Dashboard) handleSource(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	s := d.cache.source(r.PathValue("name"))
	if s == nil {
		d.renderError(w, r, http.StatusNotFound, "no Source called "+r.PathValue("name"))
		return
	}
	sp := sourcePage{Summary: summarize(s), Spec: s.Spec, Conditions: s.Status.Conditions}
	sp.Spec.URL = redactURL(sp.Spec.URL)
	for _, e := range s.Status.Inventory {
		sp.Summary.Counts.add(d.resolve(s.Name, e).Health.Status)
	}
	for _, h := range s.Status.History {
		sp.History = append(sp.History, syncSummary(h))
	}
	d.render(w, r, http.StatusOK, "source", page{Title: "Source " + s.Name, Nav: "overview", Version: v, Body: sp})
}

// objectRow is one row of /objects.
type objectRow struct {
	Ref      Ref
	Source   string
	Health   string
	Message  string
	File     string
	Revision string
}

// listPage is a table of rows, of which Omitted more were left out.
type listPage[T any] struct {
	Rows    []T
	Total   int
	Omitted int
}

func (d *Dashboard) newFilter(r *http.Request) *filter {
	q := r.URL.Query()
	f := &filter{Namespace: q.Get("namespace"), Source: q.Get("source"), Health: q.Get("health"), Kind: q.Get("kind"),
		Node: q.Get("node"), Type: q.Get("type"), Show: map[string]bool{}}
	for _, n := range list[*corev1.Namespace](d.cache.namespaces) {
		f.Namespaces = append(f.Namespaces, n.Name)
	}
	slices.Sort(f.Namespaces)
	for _, s := range d.cache.sourceList() {
		f.Sources = append(f.Sources, s.Name)
	}
	slices.Sort(f.Sources)
	return f
}

// handleObjects serves /objects: every managed object, and the workloads
// and Services no Source manages, filtered.
func (d *Dashboard) handleObjects(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	f := d.newFilter(r)
	f.Show["health"], f.Show["kind"] = true, true
	var rows []objectRow
	managed := map[Ref]bool{}
	kinds := map[string]bool{}
	keep := func(row objectRow) {
		kinds[row.Ref.Kind] = true
		if f.Namespace != "" && row.Ref.Namespace != f.Namespace || f.Health != "" && row.Health != f.Health || f.Kind != "" && row.Ref.Kind != f.Kind {
			return
		}
		rows = append(rows, row)
	}
	for _, s := range d.cache.sourceList() {
		for _, e := range s.Status.Inventory {
			mo := d.resolve(s.Name, e)
			row := objectRow{Ref: Ref{Group: e.Group, Version: e.Version, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name},
				Source: s.Name, Health: mo.Health.Status, Message: mo.Health.Message}
			managed[row.Ref] = true
			if m, err := meta.Accessor(mo.Obj); err == nil && mo.Obj != nil {
				row.File, row.Revision = m.GetAnnotations()[reconcile.AnnotationPath], m.GetAnnotations()[reconcile.AnnotationRevision]
			}
			if f.Source == "" || f.Source == s.Name {
				keep(row)
			}
		}
	}
	if f.Source == "" {
		for _, gk := range []schema.GroupKind{gkDeployment, gkStatefulSet, gkDaemonSet, gkJob, gkService} {
			for _, o := range d.cache.typed[gk].GetStore().List() {
				m, err := meta.Accessor(o)
				if err != nil || metav1.GetControllerOf(m) != nil {
					continue
				}
				ref := refOf(gk, m.GetNamespace(), m.GetName())
				if managed[ref] {
					continue
				}
				h := d.judge(gk.WithVersion("v1"), o)
				keep(objectRow{Ref: ref, Health: h.Status, Message: h.Message})
			}
		}
	}
	slices.SortFunc(rows, func(a, b objectRow) int {
		return cmp.Or(cmp.Compare(healthOrder[a.Health], healthOrder[b.Health]), cmp.Compare(a.Source, b.Source),
			cmp.Compare(a.Ref.Namespace, b.Ref.Namespace), cmp.Compare(a.Ref.Kind, b.Ref.Kind), cmp.Compare(a.Ref.Name, b.Ref.Name))
	})
	for k := range kinds {
		f.Kinds = append(f.Kinds, k)
	}
	slices.Sort(f.Kinds)
	d.render(w, r, http.StatusOK, "objects", page{Title: "Objects", Nav: "objects", Version: v, Filter: f, Body: limit(rows, d.cfg.MaxRows)})
}

// limit cuts rows to MaxRows.
func limit[T any](rows []T, max int) listPage[T] {
	lp := listPage[T]{Rows: rows, Total: len(rows)}
	if len(rows) > max {
		lp.Rows, lp.Omitted = rows[:max], len(rows)-max
	}
	return lp
}

// sourceOf is the Source an object belongs to: its own label, or that of
// the controller above it (a pod of a managed Deployment's ReplicaSet).
func (d *Dashboard) sourceOf(m metav1.Object) string {
	for range 4 {
		if s := m.GetLabels()[reconcile.LabelSource]; s != "" {
			return s
		}
		ref := metav1.GetControllerOf(m)
		if ref == nil {
			return ""
		}
		gv, _ := schema.ParseGroupVersion(ref.APIVersion)
		o, _ := d.cache.get(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, m.GetNamespace(), ref.Name)
		next, err := meta.Accessor(o)
		if o == nil || err != nil {
			return ""
		}
		m = next
	}
	return ""
}

// podRow is one row of /pods.
type podRow struct {
	Ref      Ref
	Ready    string
	OK       bool
	Status   string
	Restarts int32
	Node     string
	Age      time.Time
	Source   string
}

func (d *Dashboard) handlePods(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	f := d.newFilter(r)
	f.Show["node"] = true
	var rows []podRow
	for _, p := range list[*corev1.Pod](d.cache.pods) {
		if f.Namespace != "" && p.Namespace != f.Namespace || f.Node != "" && p.Spec.NodeName != f.Node {
			continue
		}
		src := d.sourceOf(p)
		if f.Source != "" && src != f.Source {
			continue
		}
		rows = append(rows, podRow{Ref: refOf(gkPod, p.Namespace, p.Name), Ready: readyCount(p), Status: podStatus(p),
			OK: podReady(p) || p.Status.Phase == corev1.PodSucceeded, Restarts: restarts(p), Node: p.Spec.NodeName,
			Age: p.CreationTimestamp.Time, Source: src})
	}
	slices.SortFunc(rows, func(a, b podRow) int {
		return cmp.Or(cmp.Compare(a.Ref.Namespace, b.Ref.Namespace), cmp.Compare(a.Ref.Name, b.Ref.Name))
	})
	for _, n := range list[*corev1.Node](d.cache.nodes) {
		f.Nodes = append(f.Nodes, n.Name)
	}
	slices.Sort(f.Nodes)
	d.render(w, r, http.StatusOK, "pods", page{Title: "Pods", Nav: "pods", Version: v, Filter: f, Body: limit(rows, d.cfg.MaxRows)})
}

// nodeRow is one row of /nodes.
type nodeRow struct {
	NodeSummary
	Age            time.Time
	KubeletVersion string
	InternalIP     string
	Taints         []string
}

func (d *Dashboard) handleNodes(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	var rows []nodeRow
	for _, ns := range d.nodeSummaries() {
		row := nodeRow{NodeSummary: ns}
		if o, _ := d.cache.get(gkNode, "", ns.Name); o != nil {
			n := o.(*corev1.Node)
			row.Age, row.KubeletVersion = n.CreationTimestamp.Time, n.Status.NodeInfo.KubeletVersion
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					row.InternalIP = a.Address
				}
			}
			for _, t := range n.Spec.Taints {
				row.Taints = append(row.Taints, t.ToString())
			}
		}
		rows = append(rows, row)
	}
	d.render(w, r, http.StatusOK, "nodes", page{Title: "Nodes", Nav: "nodes", Version: v, Body: limit(rows, d.cfg.MaxRows)})
}

// eventRow is one row of /events and of an object's events.
type eventRow struct {
	Type    string
	Reason  string
	Object  Ref
	Message string
	Count   int32
	Last    time.Time
	Source  string
	// rv orders events of the same second: the API records times to
	// the second, resourceVersions grow.
	rv int64
}

func (d *Dashboard) handleEvents(w http.ResponseWriter, r *http.Request) {
	v := d.hub.version.Load()
	f := d.newFilter(r)
	f.Show["type"] = true
	var rows []eventRow
	for _, e := range list[*corev1.Event](d.cache.events) {
		if f.Namespace != "" && e.InvolvedObject.Namespace != f.Namespace || f.Type != "" && e.Type != f.Type {
			continue
		}
		row := d.eventRow(e)
		if row.Object.GroupKind() == reconcile.SourceGVK.GroupKind() {
			row.Source = row.Object.Name
		}
		if f.Source != "" && row.Source == "" {
			if o, _ := d.cache.get(row.Object.GroupKind(), row.Object.Namespace, row.Object.Name); o != nil {
				if m, err := meta.Accessor(o); err == nil {
					row.Source = d.sourceOf(m)
				}
			}
		}
		if f.Source != "" && row.Source != f.Source {
			continue
		}
		rows = append(rows, row)
	}
	sortEvents(rows)
	d.render(w, r, http.StatusOK, "events", page{Title: "Events", Nav: "events", Version: v, Filter: f, Body: limit(rows, d.cfg.MaxRows)})
}

func (d *Dashboard) eventRow(e *corev1.Event) eventRow {
	io := e.InvolvedObject
	count := e.Count
	if e.Series != nil {
		count = e.Series.Count
	}
	rv, _ := strconv.ParseInt(e.ResourceVersion, 10, 64)
	return eventRow{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: max(count, 1), Last: eventTime(e),
		Object: refFromAPIVersion(io.APIVersion, io.Kind, io.Namespace, io.Name), rv: rv}
}

func sortEvents(rows []eventRow) {
	slices.SortFunc(rows, func(a, b eventRow) int {
		return cmp.Or(b.Last.Compare(a.Last), cmp.Compare(b.rv, a.rv))
	})
}

// children lists the objects whose controller is uid: ReplicaSets,
// Jobs and Pods.
func (d *Dashboard) children(uid string) []Ref {
	var out []Ref
	for _, rs := range byIndex[*appsv1.ReplicaSet](d.cache.replicasets, indexOwner, uid) {
		out = append(out, refOf(gkReplicaSet, rs.Namespace, rs.Name))
	}
	for _, j := range byIndex[*batchv1.Job](d.cache.jobs, indexOwner, uid) {
		out = append(out, refOf(gkJob, j.Namespace, j.Name))
	}
	for _, p := range byIndex[*corev1.Pod](d.cache.pods, indexOwner, uid) {
		out = append(out, refOf(gkPod, p.Namespace, p.Name))
	}
	slices.SortFunc(out, func(a, b Ref) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name)) })
	return out
}
