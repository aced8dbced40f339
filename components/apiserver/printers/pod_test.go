package printers

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// pod builds a pod named "web" on node-1 with one container per status
// (named c0, c1, ...) and an init container per init status.
func pod(phase corev1.PodPhase, inits []corev1.ContainerStatus, statuses []corev1.ContainerStatus, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: objMeta("web"),
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{
			Phase:  phase,
			PodIPs: []corev1.PodIP{{IP: "10.42.0.5"}},
		},
	}
	for i := range inits {
		inits[i].Name = "init" + string(rune('0'+i))
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: inits[i].Name})
	}
	for i := range statuses {
		statuses[i].Name = "c" + string(rune('0'+i))
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: statuses[i].Name})
	}
	p.Status.InitContainerStatuses = inits
	p.Status.ContainerStatuses = statuses
	for _, m := range mutate {
		m(p)
	}
	return p
}

func running(ready bool, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Ready:        ready,
		RestartCount: restarts,
		State:        corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(time.Minute)}},
	}
}

func waiting(reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		RestartCount: restarts,
		State:        corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}},
	}
}

func terminated(reason string, exitCode, signal int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: exitCode, Signal: signal}},
	}
}

// lastTerminated sets when the container last terminated, d before now.
func lastTerminated(s corev1.ContainerStatus, d time.Duration) corev1.ContainerStatus {
	s.LastTerminationState.Terminated = &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(d)}
	return s
}

func condition(t corev1.PodConditionType, s corev1.ConditionStatus) corev1.PodCondition {
	return corev1.PodCondition{Type: t, Status: s}
}

func deleting(p *corev1.Pod) { p.DeletionTimestamp = agoPtr(time.Second) }

func TestRow_pods(t *testing.T) {
	cells := func(ready, status, restarts string) []interface{} {
		return []interface{}{"web", ready, status, restarts, "5m", "10.42.0.5", "node-1", "<none>", "<none>"}
	}
	runRows(t, "", "pods", []rowCase{
		{
			name: "running with 2 restarts",
			obj:  pod(corev1.PodRunning, nil, []corev1.ContainerStatus{lastTerminated(running(true, 2), 3*time.Minute)}),
			want: cells("1/1", "Running", "2 (3m ago)"),
		},
		{
			name: "restarts without a termination time",
			obj:  pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 4)}),
			want: cells("1/1", "Running", "4"),
		},
		{
			name: "crash loop",
			obj:  pod(corev1.PodRunning, nil, []corev1.ContainerStatus{lastTerminated(waiting("CrashLoopBackOff", 5), 30*time.Second)}),
			want: cells("0/1", "CrashLoopBackOff", "5 (30s ago)"),
		},
		{
			name: "one of two ready",
			obj:  pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 0), running(false, 0)}),
			want: cells("1/2", "Running", "0"),
		},
		{
			name: "pending without statuses",
			obj:  pod(corev1.PodPending, nil, nil, func(p *corev1.Pod) { p.Spec.Containers = []corev1.Container{{Name: "c0"}} }),
			want: cells("0/1", "Pending", "0"),
		},
		{
			name: "init 0/1",
			obj:  pod(corev1.PodPending, []corev1.ContainerStatus{waiting("PodInitializing", 0)}, []corev1.ContainerStatus{waiting("PodInitializing", 0)}),
			want: cells("0/1", "Init:0/1", "0"),
		},
		{
			name: "init 1/2",
			obj: pod(corev1.PodPending,
				[]corev1.ContainerStatus{terminated("Completed", 0, 0), running(false, 0)},
				[]corev1.ContainerStatus{waiting("PodInitializing", 0)}),
			want: cells("0/1", "Init:1/2", "0"),
		},
		{
			name: "init crash loop",
			obj: pod(corev1.PodPending,
				[]corev1.ContainerStatus{lastTerminated(waiting("CrashLoopBackOff", 3), time.Minute)},
				[]corev1.ContainerStatus{waiting("PodInitializing", 0)}),
			want: cells("0/1", "Init:CrashLoopBackOff", "3 (60s ago)"),
		},
		{
			name: "init error",
			obj:  pod(corev1.PodPending, []corev1.ContainerStatus{terminated("Error", 1, 0)}, []corev1.ContainerStatus{waiting("PodInitializing", 0)}),
			want: cells("0/1", "Init:Error", "0"),
		},
		{
			name: "init exit code",
			obj:  pod(corev1.PodPending, []corev1.ContainerStatus{terminated("", 2, 0)}, []corev1.ContainerStatus{waiting("PodInitializing", 0)}),
			want: cells("0/1", "Init:ExitCode:2", "0"),
		},
		{
			name: "init signal",
			obj:  pod(corev1.PodPending, []corev1.ContainerStatus{terminated("", 137, 9)}, []corev1.ContainerStatus{waiting("PodInitializing", 0)}),
			want: cells("0/1", "Init:Signal:9", "0"),
		},
		{
			name: "init condition false",
			obj: pod(corev1.PodPending, []corev1.ContainerStatus{waiting("ImagePullBackOff", 0)}, []corev1.ContainerStatus{waiting("PodInitializing", 0)},
				func(p *corev1.Pod) {
					p.Status.Conditions = []corev1.PodCondition{condition(corev1.PodInitialized, corev1.ConditionFalse)}
				}),
			want: cells("0/1", "Init:ImagePullBackOff", "0"),
		},
		{
			name: "initialized pod reports its containers",
			obj: pod(corev1.PodRunning, []corev1.ContainerStatus{waiting("CrashLoopBackOff", 0)}, []corev1.ContainerStatus{waiting("CrashLoopBackOff", 1)},
				func(p *corev1.Pod) {
					p.Status.Conditions = []corev1.PodCondition{condition(corev1.PodInitialized, corev1.ConditionTrue)}
				}),
			want: cells("0/1", "CrashLoopBackOff", "1"),
		},
		{
			name: "sidecar counts as a container",
			obj: pod(corev1.PodRunning,
				[]corev1.ContainerStatus{lastTerminated(running(true, 1), 2*time.Minute)},
				[]corev1.ContainerStatus{running(true, 0)},
				func(p *corev1.Pod) {
					p.Spec.InitContainers[0].RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
					p.Status.InitContainerStatuses[0].Started = ptr(true)
				}),
			want: cells("2/2", "Running", "1 (2m ago)"),
		},
		{
			name: "completed",
			obj:  pod(corev1.PodSucceeded, nil, []corev1.ContainerStatus{terminated("Completed", 0, 0)}),
			want: cells("0/1", "Completed", "0"),
		},
		{
			name: "exit code without reason",
			obj:  pod(corev1.PodFailed, nil, []corev1.ContainerStatus{terminated("", 3, 0)}),
			want: cells("0/1", "ExitCode:3", "0"),
		},
		{
			name: "signal without reason",
			obj:  pod(corev1.PodFailed, nil, []corev1.ContainerStatus{terminated("", 137, 9)}),
			want: cells("0/1", "Signal:9", "0"),
		},
		{
			name: "completed container beside a running one, pod ready",
			obj: pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 0), terminated("Completed", 0, 0)},
				func(p *corev1.Pod) {
					p.Status.Conditions = []corev1.PodCondition{condition(corev1.PodReady, corev1.ConditionTrue)}
				}),
			want: cells("1/2", "Running", "0"),
		},
		{
			name: "completed container beside a running one, pod not ready",
			obj:  pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 0), terminated("Completed", 0, 0)}),
			want: cells("1/2", "NotReady", "0"),
		},
		{
			name: "evicted",
			obj: pod(corev1.PodFailed, nil, []corev1.ContainerStatus{terminated("ContainerStatusUnknown", 137, 0)},
				func(p *corev1.Pod) { p.Status.Reason = "Evicted" }),
			want: cells("0/1", "ContainerStatusUnknown", "0"),
		},
		{
			name: "evicted without container statuses",
			obj:  pod(corev1.PodFailed, nil, nil, func(p *corev1.Pod) { p.Status.Reason = "Evicted" }),
			want: cells("0/0", "Evicted", "0"),
		},
		{
			name: "scheduling gated",
			obj: pod(corev1.PodPending, nil, nil, func(p *corev1.Pod) {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonSchedulingGated}}
			}),
			want: cells("0/0", "SchedulingGated", "0"),
		},
		{
			name: "terminating",
			obj:  pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 0)}, deleting),
			want: cells("1/1", "Terminating", "0"),
		},
		{
			name: "terminating after success stays completed",
			obj:  pod(corev1.PodSucceeded, nil, []corev1.ContainerStatus{terminated("Completed", 0, 0)}, deleting),
			want: cells("0/1", "Completed", "0"),
		},
		{
			name: "terminating on a lost node",
			obj: pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 0)}, deleting,
				func(p *corev1.Pod) { p.Status.Reason = "NodeLost" }),
			want: cells("1/1", "Unknown", "0"),
		},
		{
			name: "wide cells",
			obj: pod(corev1.PodRunning, nil, []corev1.ContainerStatus{running(true, 0)}, func(p *corev1.Pod) {
				p.Spec.NodeName = ""
				p.Status.PodIPs = nil
				p.Status.PodIP = "10.42.0.9"
				p.Status.NominatedNodeName = "node-2"
				p.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.com/a"}, {ConditionType: "example.com/b"}}
				p.Status.Conditions = []corev1.PodCondition{condition("example.com/a", corev1.ConditionTrue), condition("example.com/b", corev1.ConditionFalse)}
			}),
			want: []interface{}{"web", "1/1", "Running", "0", "5m", "10.42.0.9", "<none>", "node-2", "1/2"},
		},
		{
			name: "no IP, no creation time",
			obj: pod(corev1.PodPending, nil, nil, func(p *corev1.Pod) {
				p.Status.PodIPs = nil
				p.CreationTimestamp = metav1.Time{}
			}),
			want: []interface{}{"web", "0/0", "Pending", "0", "<unknown>", "<none>", "node-1", "<none>", "<none>"},
		},
		{
			name: "unstructured",
			obj:  toUnstructured(t, pod(corev1.PodRunning, nil, []corev1.ContainerStatus{lastTerminated(running(true, 2), 3*time.Minute)})),
			want: cells("1/1", "Running", "2 (3m ago)"),
		},
	})
}

func TestRowConditions_pods(t *testing.T) {
	completed := func(reason, msg string) []metav1.TableRowCondition {
		return []metav1.TableRowCondition{{Type: metav1.RowCompleted, Status: metav1.ConditionTrue, Reason: reason, Message: msg}}
	}
	for _, tc := range []struct {
		name string
		obj  runtime.Object
		want []metav1.TableRowCondition
	}{
		{"running", pod(corev1.PodRunning, nil, nil), nil},
		{"succeeded", pod(corev1.PodSucceeded, nil, nil), completed("Succeeded", "The pod has completed successfully.")},
		{"failed", pod(corev1.PodFailed, nil, nil), completed("Failed", "The pod failed.")},
		{"failed unstructured", toUnstructured(t, pod(corev1.PodFailed, nil, nil)), completed("Failed", "The pod failed.")},
		{"nil", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rowConditions("", "pods", tc.obj); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("rowConditions = %#v, want %#v", got, tc.want)
			}
		})
	}
}

// toUnstructured converts a typed object the way a generic store would hold it.
func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatalf("to unstructured: %v", err)
	}
	return &unstructured.Unstructured{Object: m}
}
