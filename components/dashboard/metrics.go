package dashboard

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/reconcile"
)

// Label values of kiln_sync_total's result.
const (
	metricSuccess = "success"
	metricFailure = "failure"
)

// metrics are the dashboard's own Prometheus metrics, derived from what
// the informers see: each sync record in a Source's history and each
// pod's scheduling and start are observed once.
type metrics struct {
	registry      *prometheus.Registry
	syncDuration  *prometheus.HistogramVec
	syncTotal     *prometheus.CounterVec
	podScheduling prometheus.Histogram
	podStart      prometheus.Histogram

	mu sync.Mutex
	// syncs are the history records already counted, by Source name.
	syncs map[string]map[syncKey]struct{}
	// scheduled and started are the pods already observed.
	scheduled, started map[types.UID]struct{}
}

// syncKey identifies a history record; records carry no ID.
type syncKey struct {
	start      int64
	revision   string
	durationMS int64
	err        string
}

// latencyBuckets suit pod latencies, which the API records to the second.
var latencyBuckets = []float64{0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600}

func newMetrics(sources func() []*reconcile.Source) (*metrics, error) {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kiln_sync_duration_seconds",
			Help:    "Duration of each sync in a Source's history, by source.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"source"}),
		syncTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_sync_total",
			Help: "Syncs in Sources' histories, by source and result (success or failure); each record counted once.",
		}, []string{"source", "result"}),
		podScheduling: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiln_pod_scheduling_seconds",
			Help:    "Time from a pod's creation to its PodScheduled=True condition, observed once per pod.",
			Buckets: latencyBuckets,
		}),
		podStart: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kiln_pod_start_seconds",
			Help:    "Time from a pod's creation to its Ready=True condition, observed once per pod.",
			Buckets: latencyBuckets,
		}),
		syncs:     map[string]map[syncKey]struct{}{},
		scheduled: map[types.UID]struct{}{},
		started:   map[types.UID]struct{}{},
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "kiln_reconcile_queue_depth",
		Help: "Sources whose last attempted revision is not the last applied one: reconcile runs one loop per source and has no queue, so this counts the revisions waiting to be applied (or failing).",
	}, func() float64 {
		n := 0
		for _, s := range sources() {
			if s.Status.LastAttemptedRevision != "" && s.Status.LastAttemptedRevision != s.Status.LastAppliedRevision {
				n++
			}
		}
		return float64(n)
	})
	for _, c := range []prometheus.Collector{m.syncDuration, m.syncTotal, m.podScheduling, m.podStart, depth} {
		if err := m.registry.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observeSource counts the records of s's history not counted before.
// The history keeps the last reconcile.MaxHistory records, so what was
// counted is replaced by what is there now.
func (m *metrics) observeSource(s *reconcile.Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.syncs[s.Name]
	now := make(map[syncKey]struct{}, len(s.Status.History))
	for _, r := range s.Status.History {
		k := syncKey{r.Start.UnixNano(), r.Revision, r.DurationMS, r.Error}
		now[k] = struct{}{}
		if _, ok := seen[k]; ok {
			continue
		}
		result := metricSuccess
		if r.Error != "" {
			result = metricFailure
		}
		m.syncTotal.WithLabelValues(s.Name, result).Inc()
		m.syncDuration.WithLabelValues(s.Name).Observe((time.Duration(r.DurationMS) * time.Millisecond).Seconds())
	}
	m.syncs[s.Name] = now
}

// observePod observes p's scheduling and start latency, once each.
func (m *metrics) observePod(p *corev1.Pod) {
	created := p.CreationTimestamp.Time
	if created.IsZero() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range []struct {
		cond corev1.PodConditionType
		seen map[types.UID]struct{}
		h    prometheus.Histogram
	}{{corev1.PodScheduled, m.scheduled, m.podScheduling}, {corev1.PodReady, m.started, m.podStart}} {
		if _, ok := x.seen[p.UID]; ok {
			continue
		}
		c := podCondition(p, x.cond)
		if c == nil || c.Status != corev1.ConditionTrue || c.LastTransitionTime.IsZero() {
			continue
		}
		x.seen[p.UID] = struct{}{}
		x.h.Observe(max(0, c.LastTransitionTime.Sub(created).Seconds()))
	}
}

// forgetPod and forgetSource drop what was remembered of a deleted object.
func (m *metrics) forgetPod(uid types.UID) {
	m.mu.Lock()
	delete(m.scheduled, uid)
	delete(m.started, uid)
	m.mu.Unlock()
}

func (m *metrics) forgetSource(name string) {
	m.mu.Lock()
	delete(m.syncs, name)
	m.mu.Unlock()
}
