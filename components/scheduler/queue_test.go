package scheduler

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeClock is a settable time for queue tests.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestQueue() (*queue, *fakeClock) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	return newQueue(clk.now), clk
}

func queuedPodFor(name string, priority int32) *corev1.Pod {
	p := newPod(name, "", "")
	p.UID = types.UID("uid-" + name)
	p.Spec.Priority = &priority
	return p
}

// popNow pops without waiting: nil when nothing is ready.
func popNow(t *testing.T, q *queue) *queuedPod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	return q.pop(ctx)
}

func wantPop(t *testing.T, q *queue, name string) *queuedPod {
	t.Helper()
	qp := popNow(t, q)
	if qp == nil || qp.pod.Name != name {
		got := "nothing"
		if qp != nil {
			got = qp.pod.Name
		}
		t.Fatalf("popped %s, want %s", got, name)
	}
	return qp
}

func TestBackoffFor(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := backoffFor(i + 1); got != w {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w)
		}
	}
}

func TestQueue_pop_priorityThenFIFO(t *testing.T) {
	q, clk := newTestQueue()
	for _, p := range []struct {
		name string
		prio int32
	}{{"low-1", 0}, {"high", 100}, {"low-2", 0}, {"mid", 10}} {
		q.add(queuedPodFor(p.name, p.prio))
		clk.advance(time.Millisecond)
	}
	for _, name := range []string{"high", "mid", "low-1", "low-2"} {
		wantPop(t, q, name)
	}
	if qp := popNow(t, q); qp != nil {
		t.Fatalf("popped %s from an empty queue", qp.pod.Name)
	}
}

// An unschedulable pod waits for an event; an event moves it, and an
// idle scheduler takes it at once rather than after its backoff.
func TestQueue_unschedulable_movedByEvent(t *testing.T) {
	q, _ := newTestQueue()
	q.add(queuedPodFor("p", 0))
	qp := wantPop(t, q, "p")
	q.requeue(qp, true, pluginNodeResourcesFit)
	if where, _ := q.lookup(qp.key, ""); where != inUnschedulable {
		t.Fatalf("in %v, want unschedulable", where)
	}
	if popNow(t, q) != nil {
		t.Fatal("an unschedulable pod was popped without an event")
	}
	// An event that helps only affinity leaves it.
	q.move(affectedByPods)
	if where, _ := q.lookup(qp.key, ""); where != inUnschedulable {
		t.Fatalf("moved by an unrelated event: in %v", where)
	}
	q.move(nil)
	if where, _ := q.lookup(qp.key, ""); where != inBackoff {
		t.Fatalf("in %v after an event, want backoff", where)
	}
	wantPop(t, q, "p") // the queue is idle: no wait for the backoff
}

// A pod that failed with an error waits out its backoff even when idle.
func TestQueue_error_backsOff(t *testing.T) {
	q, clk := newTestQueue()
	q.add(queuedPodFor("p", 0))
	qp := wantPop(t, q, "p")
	q.requeue(qp, false, 0)
	if popNow(t, q) != nil {
		t.Fatal("popped during its backoff")
	}
	clk.advance(InitialBackoff)
	wantPop(t, q, "p")
	q.requeue(qp, false, 0)
	clk.advance(InitialBackoff)
	if popNow(t, q) != nil {
		t.Fatal("second backoff should be 2s")
	}
	clk.advance(InitialBackoff)
	wantPop(t, q, "p")
}

// An event while the pod is in flight means its failure may be stale: it
// goes to backoff, not to wait for another event.
func TestQueue_eventDuringFlight(t *testing.T) {
	q, _ := newTestQueue()
	q.add(queuedPodFor("p", 0))
	qp := wantPop(t, q, "p")
	q.move(nil)
	q.requeue(qp, true, pluginNodeResourcesFit)
	if where, _ := q.lookup(qp.key, ""); where != inBackoff {
		t.Fatalf("in %v, want backoff", where)
	}
}

// Our own status write does not retry a pod; a spec change does.
func TestQueue_update_onlySpecChangesRetry(t *testing.T) {
	q, _ := newTestQueue()
	pod := queuedPodFor("p", 0)
	q.add(pod)
	qp := wantPop(t, q, "p")
	q.requeue(qp, true, pluginTaintToleration)

	withStatus := pod.DeepCopy()
	withStatus.ResourceVersion = "7"
	withStatus.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse}}
	q.update(withStatus)
	if where, _ := q.lookup(qp.key, ""); where != inUnschedulable {
		t.Fatalf("status update moved it to %v", where)
	}
	tolerating := withStatus.DeepCopy()
	tolerating.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	q.update(tolerating)
	got := wantPop(t, q, "p")
	if len(got.pod.Spec.Tolerations) != 1 {
		t.Fatal("popped the old version of the pod")
	}
}

func TestQueue_gatedUntilGatesLifted(t *testing.T) {
	q, _ := newTestQueue()
	pod := queuedPodFor("p", 0)
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "wait"}}
	q.add(pod)
	if popNow(t, q) != nil {
		t.Fatal("a gated pod was popped")
	}
	open := pod.DeepCopy()
	open.Spec.SchedulingGates = nil
	q.update(open)
	wantPop(t, q, "p")
}

// A pod deleted (or bound by another) while in flight is not requeued.
func TestQueue_deleteDuringFlight(t *testing.T) {
	q, _ := newTestQueue()
	pod := queuedPodFor("p", 0)
	q.add(pod)
	qp := wantPop(t, q, "p")
	q.delete(pod)
	q.requeue(qp, false, 0)
	if _, ok := q.lookup(qp.key, ""); ok {
		t.Fatal("a deleted pod was requeued")
	}
	// Recreated under the same name: the new pod is queued afresh.
	again := queuedPodFor("p", 0)
	again.UID = "uid-p-2"
	q.add(again)
	if got := wantPop(t, q, "p"); got.pod.UID != "uid-p-2" {
		t.Fatalf("popped %s", got.pod.UID)
	}
}

func TestQueue_flushUnschedulable(t *testing.T) {
	q, clk := newTestQueue()
	q.add(queuedPodFor("p", 0))
	q.requeue(wantPop(t, q, "p"), true, pluginNodeAffinity)
	clk.advance(MaxUnschedulableDuration - time.Second)
	q.flushUnschedulable()
	if popNow(t, q) != nil {
		t.Fatal("flushed too early")
	}
	clk.advance(time.Second)
	q.flushUnschedulable()
	wantPop(t, q, "p")
}

func TestQueue_close_endsPop(t *testing.T) {
	q, _ := newTestQueue()
	done := make(chan *queuedPod)
	go func() { done <- q.pop(t.Context()) }()
	q.close()
	select {
	case qp := <-done:
		if qp != nil {
			t.Fatal("pop returned a pod after close")
		}
	case <-time.After(waitLimit):
		t.Fatal("pop did not return after close")
	}
}
