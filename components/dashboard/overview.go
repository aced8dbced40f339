package dashboard

import (
	"cmp"
	"context"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/reconcile"
)

// maxChains bounds the "why not ready" chains on the overview; the
// objects page lists the rest.
const maxChains = 50

// Overview is the front page, and /api/status as JSON.
type Overview struct {
	Generated time.Time       `json:"generated"`
	Synced    bool            `json:"synced"`
	Sources   []SourceSummary `json:"sources"`
	Nodes     []NodeSummary   `json:"nodes"`
	// NotReady explains every unhealthy managed object, worst first, up
	// to maxChains; NotReadyOmitted counts the rest.
	NotReady        []Chain `json:"notReady"`
	NotReadyOmitted int     `json:"notReadyOmitted,omitempty"`
}

// SourceSummary is one Source on the overview.
type SourceSummary struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// URL is the repository without credentials.
	URL     string `json:"url,omitempty"`
	Path    string `json:"path,omitempty"`
	Branch  string `json:"branch,omitempty"`
	Subpath string `json:"subpath,omitempty"`
	// Revision is the last applied revision.
	Revision              string            `json:"revision,omitempty"`
	LastAttemptedRevision string            `json:"lastAttemptedRevision,omitempty"`
	Commit                *reconcile.Commit `json:"commit,omitempty"`
	LastSync              *SyncSummary      `json:"lastSync,omitempty"`
	Ready                 Condition         `json:"ready"`
	Healthy               Condition         `json:"healthy"`
	Stalled               *Condition        `json:"stalled,omitempty"`
	Counts                HealthCounts      `json:"counts"`
}

// Condition is one of a Source's conditions.
type Condition struct {
	Status  string    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since,omitzero"`
}

// SyncSummary is one sync of a Source's history.
type SyncSummary struct {
	Revision   string    `json:"revision,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	DurationMS int64     `json:"durationMs"`
	// Result is "succeeded" or "failed".
	Result     string `json:"result"`
	Created    int    `json:"created"`
	Configured int    `json:"configured"`
	Unchanged  int    `json:"unchanged"`
	Pruned     int    `json:"pruned"`
	Error      string `json:"error,omitempty"`
	File       string `json:"file,omitempty"`
}

// Sync results.
const (
	resultSucceeded = "succeeded"
	resultFailed    = "failed"
)

// NodeSummary is one node on the overview.
type NodeSummary struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Reason says why the node is not Ready.
	Reason        string `json:"reason,omitempty"`
	Unschedulable bool   `json:"unschedulable,omitempty"`
	// CPU is in millicores, Memory in bytes: the sum of the requests of
	// the node's running pods against the node's allocatable.
	CPU    ResourceUse `json:"cpu"`
	Memory ResourceUse `json:"memory"`
	Pods   int         `json:"pods"`
	Ref    Ref         `json:"-"`
}

// ResourceUse is allocated against allocatable.
type ResourceUse struct {
	Allocated   int64 `json:"allocated"`
	Allocatable int64 `json:"allocatable"`
}

// Percent is Allocated of Allocatable, 0 when nothing is allocatable.
func (r ResourceUse) Percent() int64 {
	if r.Allocatable <= 0 {
		return 0
	}
	return r.Allocated * 100 / r.Allocatable
}

// overview builds the front page from the caches. Only crash-looping
// containers' logs may cost an API request (cached).
func (d *Dashboard) overview(ctx context.Context) Overview {
	ov := Overview{Generated: d.cfg.Now(), Synced: d.cache.synced.Load(), Sources: []SourceSummary{}, NotReady: []Chain{}}
	srcs := d.cache.sourceList()
	slices.SortFunc(srcs, func(a, b *reconcile.Source) int { return cmp.Compare(a.Name, b.Name) })
	var bad []managedObject
	for _, s := range srcs {
		sum := summarize(s)
		for _, e := range s.Status.Inventory {
			mo := d.resolve(s.Name, e)
			sum.Counts.add(mo.Health.Status)
			if mo.Health.Status != HealthHealthy && mo.Health.Status != HealthUnknown {
				bad = append(bad, mo)
			}
		}
		ov.Sources = append(ov.Sources, sum)
	}
	sortManaged(bad)
	logs := d.logs.budget(ctx)
	defer logs.done()
	for i, mo := range bad {
		if i == maxChains {
			ov.NotReadyOmitted = len(bad) - maxChains
			break
		}
		ov.NotReady = append(ov.NotReady, d.chain(mo, logs))
	}
	ov.Nodes = d.nodeSummaries()
	return ov
}

func sortManaged(mos []managedObject) {
	slices.SortFunc(mos, func(a, b managedObject) int {
		return cmp.Or(cmp.Compare(healthOrder[a.Health.Status], healthOrder[b.Health.Status]),
			cmp.Compare(a.Source, b.Source), cmp.Compare(a.Entry.Kind, b.Entry.Kind),
			cmp.Compare(a.Entry.Namespace, b.Entry.Namespace), cmp.Compare(a.Entry.Name, b.Entry.Name))
	})
}

// summarize is a Source's summary without its counts.
func summarize(s *reconcile.Source) SourceSummary {
	sum := SourceSummary{
		Name: s.Name, Kind: s.Spec.Kind, URL: redactURL(s.Spec.URL), Path: s.Spec.Path, Branch: s.Spec.Ref, Subpath: s.Spec.Subpath,
		Revision: s.Status.LastAppliedRevision, LastAttemptedRevision: s.Status.LastAttemptedRevision, Commit: s.Status.LastAppliedCommit,
		Ready: condition(s.Status.Conditions, reconcile.ConditionReady), Healthy: condition(s.Status.Conditions, reconcile.ConditionHealthy),
	}
	if c := meta.FindStatusCondition(s.Status.Conditions, reconcile.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		st := condition(s.Status.Conditions, reconcile.ConditionStalled)
		sum.Stalled = &st
	}
	if len(s.Status.History) > 0 {
		h := syncSummary(s.Status.History[0])
		sum.LastSync = &h
	}
	return sum
}

func condition(conds []metav1.Condition, typ string) Condition {
	c := meta.FindStatusCondition(conds, typ)
	if c == nil {
		return Condition{Status: string(metav1.ConditionUnknown)}
	}
	return Condition{Status: string(c.Status), Reason: c.Reason, Message: c.Message, Since: c.LastTransitionTime.Time}
}

func syncSummary(r reconcile.SyncRecord) SyncSummary {
	s := SyncSummary{Revision: r.Revision, Start: r.Start.Time, End: r.Start.Add(time.Duration(r.DurationMS) * time.Millisecond),
		DurationMS: r.DurationMS, Result: resultSucceeded, Created: r.Created, Configured: r.Configured, Unchanged: r.Unchanged,
		Pruned: r.Pruned, Error: r.Error, File: r.File}
	if r.Error != "" {
		s.Result = resultFailed
	}
	return s
}

// nodeSummaries is every node with the requests of its pods.
func (d *Dashboard) nodeSummaries() []NodeSummary {
	nodes := list[*corev1.Node](d.cache.nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	out := make([]NodeSummary, 0, len(nodes))
	for _, n := range nodes {
		ns := NodeSummary{Name: n.Name, Unschedulable: n.Spec.Unschedulable, Ref: refOf(gkNode, "", n.Name)}
		ns.Reason = "no Ready condition yet"
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				ns.Ready = c.Status == corev1.ConditionTrue
				ns.Reason = ""
				if !ns.Ready {
					ns.Reason = cmp.Or(c.Message, c.Reason, "not ready")
				}
			}
		}
		ns.CPU.Allocatable = n.Status.Allocatable.Cpu().MilliValue()
		ns.Memory.Allocatable = n.Status.Allocatable.Memory().Value()
		for _, p := range byIndex[*corev1.Pod](d.cache.pods, indexNode, n.Name) {
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			ns.Pods++
			cpu, mem := podRequests(p)
			ns.CPU.Allocated += cpu
			ns.Memory.Allocated += mem
		}
		out = append(out, ns)
	}
	return out
}

// podRequests is what the scheduler counts for a pod: the larger of the
// sum of its containers' requests and its largest init container's
// request, plus its overhead.
func podRequests(p *corev1.Pod) (cpuMilli, memBytes int64) {
	for _, c := range p.Spec.Containers {
		cpuMilli += c.Resources.Requests.Cpu().MilliValue()
		memBytes += c.Resources.Requests.Memory().Value()
	}
	for _, c := range p.Spec.InitContainers {
		cpuMilli = max(cpuMilli, c.Resources.Requests.Cpu().MilliValue())
		memBytes = max(memBytes, c.Resources.Requests.Memory().Value())
	}
	cpuMilli += p.Spec.Overhead.Cpu().MilliValue()
	memBytes += p.Spec.Overhead.Memory().Value()
	return cpuMilli, memBytes
}
