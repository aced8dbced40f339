package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// StandInOptions tune the stand-in for the scheduler and kubelet.
type StandInOptions struct {
	// Node is where unbound pods are bound ("node-1" when empty); the Node
	// object is created Ready.
	Node string
	// Ready decides whether a pod becomes Ready; nil means every pod.
	Ready func(*corev1.Pod) bool
}

// StandInKubelet plays scheduler and kubelet for controller tests, where
// no real node runs: it binds every unbound pod to one Node, marks it
// Running (and Ready when opts.Ready says so) with a pod IP, and removes
// pods whose deletion has started, as a kubelet would after their
// containers stop. It is a test helper only, named as such; it stops at
// cleanup.
func StandInKubelet(t testing.TB, env *Env, opts StandInOptions) {
	t.Helper()
	if opts.Node == "" {
		opts.Node = "node-1"
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	cs := env.Clientset
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: opts.Node}, Status: corev1.NodeStatus{
		Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}},
		Allocatable: corev1.ResourceList{}, Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
	}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { cancel(); wg.Wait() })
	go func() {
		defer wg.Done()
		var ip uint32 = 1
		for ctx.Err() == nil {
			w, err := cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{})
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok || ev.Type == watch.Deleted {
					continue
				}
				standIn(ctx, env, opts, pod, &ip)
			}
			w.Stop()
		}
	}()
}

func standIn(ctx context.Context, env *Env, opts StandInOptions, pod *corev1.Pod, ip *uint32) {
	pods := env.Clientset.CoreV1().Pods(pod.Namespace)
	switch {
	case pod.DeletionTimestamp != nil:
		zero := int64(0)
		_ = pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	case pod.Spec.NodeName == "":
		_ = pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID}, Target: corev1.ObjectReference{Kind: "Node", Name: opts.Node}}, metav1.CreateOptions{})
	case pod.Status.Phase == corev1.PodPending:
		ready := opts.Ready == nil || opts.Ready(pod)
		*ip++
		now := metav1.Now()
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p := pod.DeepCopy()
		p.Status.Phase = corev1.PodRunning
		p.Status.PodIP = fmt.Sprintf("10.42.%d.%d", (*ip>>8)&255, *ip&255)
		p.Status.PodIPs = []corev1.PodIP{{IP: p.Status.PodIP}}
		p.Status.StartTime = &now
		p.Status.Conditions = append(p.Status.Conditions,
			corev1.PodCondition{Type: corev1.PodReady, Status: st, LastTransitionTime: now},
			corev1.PodCondition{Type: corev1.ContainersReady, Status: st, LastTransitionTime: now})
		for _, c := range p.Spec.Containers {
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: ready,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
		}
		_, _ = pods.UpdateStatus(ctx, p, metav1.UpdateOptions{})
	}
}
