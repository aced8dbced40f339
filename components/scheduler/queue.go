package scheduler

import (
	"container/heap"
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
)

// where a queued pod is.
type location int8

const (
	inActive        location = iota + 1 // waiting its turn
	inBackoff                           // waiting out its backoff
	inUnschedulable                     // waiting for a cluster event
	inFlight                            // being scheduled or bound
	inGated                             // has schedulingGates; not tried
)

// queuedPod is a pod waiting to be scheduled and its history.
type queuedPod struct {
	pod      *corev1.Pod
	key      string
	priority int32
	// timestamp orders pods of equal priority (first in, first out) and
	// starts the backoff of a pod that failed.
	timestamp time.Time
	attempts  int
	// unschedulableSince is when it last went to the unschedulable set.
	unschedulableSince time.Time
	// plugins are the filters that rejected it last time.
	plugins plugin
	// moved: in backoff because a cluster event may have made it
	// schedulable, rather than because of an error; such a pod is tried
	// at once when nothing else waits (kube's SchedulerPopFromBackoffQ).
	moved bool
	// cycle is the scheduling cycle that popped it.
	cycle int64
	// updated: its spec changed while in flight, so a failure is worth
	// retrying soon.
	updated bool

	where     location
	heapIndex int
}

func (qp *queuedPod) backoffExpiry() time.Time {
	return qp.timestamp.Add(backoffFor(qp.attempts))
}

// backoffFor is InitialBackoff doubled per attempt after the first, at
// most MaxBackoff.
func backoffFor(attempts int) time.Duration {
	d := InitialBackoff
	for i := 1; i < attempts; i++ {
		d *= 2
		if d >= MaxBackoff {
			return MaxBackoff
		}
	}
	return d
}

// podHeap is a heap of queued pods under less.
type podHeap struct {
	items []*queuedPod
	less  func(a, b *queuedPod) bool
}

func (h *podHeap) Len() int           { return len(h.items) }
func (h *podHeap) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *podHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].heapIndex, h.items[j].heapIndex = i, j
}
func (h *podHeap) Push(x any) {
	qp := x.(*queuedPod)
	qp.heapIndex = len(h.items)
	h.items = append(h.items, qp)
}
func (h *podHeap) Pop() any {
	last := len(h.items) - 1
	qp := h.items[last]
	h.items[last] = nil
	h.items = h.items[:last]
	qp.heapIndex = -1
	return qp
}

// queue holds the pods waiting for a decision: an active heap ordered by
// priority then arrival, a backoff heap ordered by the end of each pod's
// backoff, and the unschedulable set of pods that wait for a cluster
// event (node added or changed, pod deleted...) that may let them fit.
// A pod is in at most one of them, or in flight between pop and done or
// requeue.
type queue struct {
	mu            sync.Mutex
	pods          map[string]*queuedPod
	active        podHeap
	backoff       podHeap
	unschedulable map[string]*queuedPod
	// cycle counts pops; moveCycle is the cycle current at the last
	// cluster event. A pod that fails in a cycle at or before moveCycle
	// may have missed that event while in flight, so it goes to backoff
	// rather than waiting for another.
	cycle, moveCycle int64
	closed           bool
	// notify wakes pop; buffered so a signal is never lost.
	notify chan struct{}
	now    func() time.Time
}

func newQueue(now func() time.Time) *queue {
	return &queue{
		pods:          map[string]*queuedPod{},
		unschedulable: map[string]*queuedPod{},
		active: podHeap{less: func(a, b *queuedPod) bool {
			if a.priority != b.priority {
				return a.priority > b.priority
			}
			return a.timestamp.Before(b.timestamp)
		}},
		backoff: podHeap{less: func(a, b *queuedPod) bool { return a.backoffExpiry().Before(b.backoffExpiry()) }},
		notify:  make(chan struct{}, 1),
		now:     now,
	}
}

func podKey(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

func podPriority(pod *corev1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

func (q *queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// take removes qp from its heap or set; q.mu must be held.
func (q *queue) take(qp *queuedPod) {
	switch qp.where {
	case inActive:
		heap.Remove(&q.active, qp.heapIndex)
	case inBackoff:
		heap.Remove(&q.backoff, qp.heapIndex)
	case inUnschedulable:
		delete(q.unschedulable, qp.key)
	}
	qp.where = 0
}

// toActive puts qp in the active heap; q.mu must be held.
func (q *queue) toActive(qp *queuedPod) {
	q.take(qp)
	qp.where = inActive
	qp.moved = false
	heap.Push(&q.active, qp)
	q.signal()
}

// toBackoff puts qp in the backoff heap, or the active one if its backoff
// is over; q.mu must be held.
func (q *queue) toBackoff(qp *queuedPod, moved bool, now time.Time) {
	if !qp.backoffExpiry().After(now) {
		q.toActive(qp)
		return
	}
	q.take(qp)
	qp.where = inBackoff
	qp.moved = moved
	heap.Push(&q.backoff, qp)
	q.signal()
}

func (q *queue) toUnschedulable(qp *queuedPod, now time.Time) {
	q.take(qp)
	qp.where = inUnschedulable
	qp.unschedulableSince = now
	q.unschedulable[qp.key] = qp
}

// add queues a new pod, or updates the one queued under its key.
func (q *queue) add(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(pod)
}

func (q *queue) addLocked(pod *corev1.Pod) {
	key := podKey(pod)
	if qp, ok := q.pods[key]; ok {
		if qp.pod.UID == pod.UID {
			q.updateLocked(qp, pod)
			return
		}
		q.deleteLocked(qp) // deleted and recreated under the same name
	}
	qp := &queuedPod{pod: pod, key: key, priority: podPriority(pod), timestamp: q.now(), heapIndex: -1}
	q.pods[key] = qp
	if len(pod.Spec.SchedulingGates) > 0 {
		qp.where = inGated
		return
	}
	q.toActive(qp)
}

// update records a new version of an unscheduled pod. A change beyond
// status and bookkeeping metadata (new tolerations, a lifted scheduling
// gate) may make an unschedulable pod fit, so it is retried; our own
// PodScheduled condition is a status change and is not.
func (q *queue) update(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(pod)
}

func (q *queue) updateLocked(qp *queuedPod, pod *corev1.Pod) {
	changed := specChanged(qp.pod, pod)
	qp.pod = pod
	qp.priority = podPriority(pod)
	switch qp.where {
	case inActive:
		heap.Fix(&q.active, qp.heapIndex)
	case inUnschedulable:
		if changed {
			q.toBackoff(qp, true, q.now())
		}
	case inFlight:
		if changed {
			qp.updated = true
		}
	case inGated:
		if len(pod.Spec.SchedulingGates) == 0 {
			q.toActive(qp)
		}
	}
}

// specChanged reports whether two versions of a pod differ in more than
// status, resourceVersion, generation and managedFields.
func specChanged(a, b *corev1.Pod) bool {
	strip := func(p *corev1.Pod) *corev1.Pod {
		c := *p
		c.Status = corev1.PodStatus{}
		c.ObjectMeta.ResourceVersion = ""
		c.ObjectMeta.Generation = 0
		c.ObjectMeta.ManagedFields = nil
		return &c
	}
	return !equality.Semantic.DeepEqual(strip(a), strip(b))
}

// delete forgets a pod: deleted, or bound (by us or by another).
func (q *queue) delete(pod *corev1.Pod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if qp, ok := q.pods[podKey(pod)]; ok && (pod.UID == "" || qp.pod.UID == pod.UID) {
		q.deleteLocked(qp)
	}
}

func (q *queue) deleteLocked(qp *queuedPod) {
	q.take(qp)
	delete(q.pods, qp.key)
}

// pop returns the next pod to schedule, waiting for one; nil once ctx is
// done or the queue closed. Pods whose backoff ended join the active heap
// first; when none is active, a pod moved to backoff by a cluster event
// is taken early, since the scheduler would otherwise idle.
func (q *queue) pop(ctx context.Context) *queuedPod {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil
		}
		now := q.now()
		for q.backoff.Len() > 0 && !q.backoff.items[0].backoffExpiry().After(now) {
			q.toActive(q.backoff.items[0])
		}
		var qp *queuedPod
		if q.active.Len() > 0 {
			qp = q.active.items[0]
		} else {
			for _, b := range q.backoff.items {
				if b.moved && (qp == nil || q.backoff.less(b, qp)) {
					qp = b
				}
			}
		}
		if qp != nil {
			q.take(qp)
			qp.where = inFlight
			qp.attempts++
			q.cycle++
			qp.cycle = q.cycle
			q.mu.Unlock()
			return qp
		}
		var wait <-chan time.Time
		if q.backoff.Len() > 0 {
			d := q.backoff.items[0].backoffExpiry().Sub(now)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			wait = timer.C
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-q.notify:
		case <-wait:
		}
	}
}

// done forgets a pod that was bound.
func (q *queue) done(qp *queuedPod) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pods[qp.key] == qp {
		delete(q.pods, qp.key)
	}
}

// requeue returns a pod that was not bound: unschedulable (no node fit;
// plugins say which filters rejected nodes) waits for a cluster event,
// unless one came while it was in flight; an error backs off.
func (q *queue) requeue(qp *queuedPod, unschedulable bool, plugins plugin) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pods[qp.key] != qp || qp.where != inFlight {
		return // deleted or bound meanwhile
	}
	now := q.now()
	qp.timestamp = now
	qp.plugins = plugins
	updated := qp.updated
	qp.updated = false
	switch {
	case !unschedulable:
		q.toBackoff(qp, false, now)
	case updated || q.moveCycle >= qp.cycle:
		q.toBackoff(qp, true, now)
	default:
		q.toUnschedulable(qp, now)
	}
}

// move retries the unschedulable pods that want says a cluster event may
// help (all when want is nil): to backoff, or to active if their backoff
// is over.
func (q *queue) move(want func(*queuedPod) bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.moveCycle = q.cycle
	if len(q.unschedulable) == 0 {
		return
	}
	now := q.now()
	for _, qp := range q.unschedulable {
		if want == nil || want(qp) {
			q.toBackoff(qp, true, now)
		}
	}
}

// flushUnschedulable retries pods that waited MaxUnschedulableDuration
// for an event.
func (q *queue) flushUnschedulable() {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	for _, qp := range q.unschedulable {
		if now.Sub(qp.unschedulableSince) >= MaxUnschedulableDuration {
			q.toBackoff(qp, false, now)
		}
	}
}

func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

// lookup reports where the pod with key is, for tests.
func (q *queue) lookup(key string, uid types.UID) (location, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	qp, ok := q.pods[key]
	if !ok || (uid != "" && qp.pod.UID != uid) {
		return 0, false
	}
	return qp.where, true
}

// sizes reports the length of each part, for tests and logs.
func (q *queue) sizes() (active, backoff, unschedulable int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active.Len(), q.backoff.Len(), len(q.unschedulable)
}
