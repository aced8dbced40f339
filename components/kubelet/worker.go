package kubelet

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// podWorker serializes everything done for one pod: one goroutine runs
// sync whenever the pod changes, the runtime reports a change of its
// containers, a probe result changes, or a timer (back-off, resync)
// fires. Only that goroutine touches state.
type podWorker struct {
	uid  types.UID
	wake chan struct{} // capacity 1: many wake-ups fold into one sync

	// pod and gone are written by the informer's handlers and read by the
	// worker; mu guards them.
	mu   sync.Mutex
	pod  *corev1.Pod
	gone bool
	// echoRV is the resourceVersion of the pod as this kubelet's last
	// status write left it: its return through the informer is no news.
	echoRV string

	state podState
}

func newPodWorker(pod *corev1.Pod) *podWorker {
	return &podWorker{
		uid:   pod.UID,
		wake:  make(chan struct{}, 1),
		pod:   pod,
		state: newPodState(),
	}
}

func (w *podWorker) signal() { signal(w.wake) }

// snapshot returns the latest pod and whether it left the API.
func (w *podWorker) snapshot() (*corev1.Pod, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.gone
}

// handlePod starts a worker for a new pod or hands a changed one to its
// worker.
func (k *Kubelet) handlePod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName != k.cfg.NodeName {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if w, ok := k.workers[pod.UID]; ok {
		w.mu.Lock()
		w.pod = pod
		echo := pod.ResourceVersion == w.echoRV
		w.mu.Unlock()
		// The echo of our own status write changes nothing to sync: a
		// sync would only read the runtime once more.
		if !echo {
			w.signal()
		}
		return
	}
	if k.stopping {
		return
	}
	w := newPodWorker(pod)
	k.workers[pod.UID] = w
	w.signal()
	k.workerWG.Go(func() { k.runWorker(w) })
}

// handlePodDelete tells a pod's worker that the pod left the API; the
// worker then removes what is left of it and exits.
func (k *Kubelet) handlePodDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	w, ok := k.workers[pod.UID]
	k.mu.Unlock()
	if !ok {
		return
	}
	w.mu.Lock()
	w.pod, w.gone = pod, true
	w.mu.Unlock()
	w.signal()
}

// wakePod makes a pod's worker sync soon; unknown pods are ignored.
func (k *Kubelet) wakePod(uid types.UID) {
	k.mu.Lock()
	w, ok := k.workers[uid]
	k.mu.Unlock()
	if ok {
		w.signal()
	}
}

// runWorker is a pod worker's goroutine. It exits when the pod is gone
// and cleaned up, or when the kubelet stops.
func (k *Kubelet) runWorker(w *podWorker) {
	ctx := k.runCtx
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
		if k.isStopping() {
			return
		}
		next, done := k.safeSync(ctx, w)
		if done {
			k.mu.Lock()
			delete(k.workers, w.uid)
			k.mu.Unlock()
			return
		}
		if next <= 0 || next > k.cfg.ResyncPeriod {
			next = k.cfg.ResyncPeriod
		}
		timer.Reset(next)
	}
}

func (k *Kubelet) isStopping() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopping
}

// safeSync runs sync, turning a panic into a logged error and a retry.
func (k *Kubelet) safeSync(ctx context.Context, w *podWorker) (next time.Duration, done bool) {
	defer func() {
		if r := recover(); r != nil {
			k.log.Error("pod sync panicked", logKeyPod, w.uid, logKeyError, fmt.Sprint(r), "stack", string(debug.Stack()))
			next, done = k.cfg.BackoffBase, false
		}
	}()
	return k.syncPod(ctx, w)
}
