package job_test

// Tests of the Job controller against a real etcd and API server
// (testenv). testenv's stand-in kubelet binds Pods and marks them Running
// and Ready; the tests play the containers exiting by setting the Pods'
// phase to Succeeded or Failed.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"kiln.dev/kiln/components/controllers/job"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns        = "default"
	waitLimit = 30 * time.Second
)

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		<-tick.C
	}
}

// start runs a control plane, the stand-in kubelet and the controller.
func start(t *testing.T) kubernetes.Interface {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	testenv.StandInKubelet(t, env, testenv.StandInOptions{})
	cs := env.Clientset
	f := informers.NewSharedInformerFactory(cs, 0)
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: cs.CoreV1().Events("")})
	c, err := job.New(job.Config{Client: cs, Informers: f, Events: events,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Run did not return within %v of cancel", waitLimit)
			}
			f.Shutdown()
			events.Shutdown()
		})
	})
	return cs
}

// waitEvent waits for an Event about j that reads want, as "Type Reason
// Message (source)", and returns all of them in that form.
func waitEvent(t *testing.T, cs kubernetes.Interface, j *batchv1.Job, want string) []string {
	t.Helper()
	var out []string
	eventually(t, "event "+want, func() bool {
		l, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(j.UID)).String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		for _, e := range l.Items {
			out = append(out, fmt.Sprintf("%s %s %s (%s)", e.Type, e.Reason, e.Message, e.Source.Component))
		}
		return slices.Contains(out, want)
	})
	return out
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func newJob(name string, completions, parallelism, backoff int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: batchv1.JobSpec{
			Completions:  &completions,
			Parallelism:  &parallelism,
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
			}},
		},
	}
}

func createJob(t *testing.T, cs kubernetes.Interface, j *batchv1.Job) *batchv1.Job {
	t.Helper()
	out, err := cs.BatchV1().Jobs(ns).Create(t.Context(), j, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func getJob(t *testing.T, cs kubernetes.Interface, name string) *batchv1.Job {
	t.Helper()
	j, err := cs.BatchV1().Jobs(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// jobPods lists the Pods of j (by its controller-uid label).
func jobPods(t *testing.T, cs kubernetes.Interface, j *batchv1.Job) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: job.LabelControllerUID + "=" + string(j.UID)})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// running returns the Pods the stand-in kubelet has running, not deleted.
func running(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func unfinished(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			n++
		}
	}
	return n
}

// exit sets a Pod's phase, as a kubelet does when its containers exit.
func exit(t *testing.T, cs kubernetes.Interface, p corev1.Pod, phase corev1.PodPhase) {
	t.Helper()
	p.Status.Phase = phase
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady || p.Status.Conditions[i].Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(t.Context(), &p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func condition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == typ && j.Status.Conditions[i].Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func TestController_completionsWithParallelism(t *testing.T) {
	cs := start(t)
	j := createJob(t, cs, newJob("work", 3, 2, 6))
	for done := 1; done <= 3; done++ {
		var run []corev1.Pod
		eventually(t, "a running pod", func() bool {
			pods := jobPods(t, cs, j)
			if n := unfinished(pods); n > 2 {
				t.Fatalf("%d unfinished pods, parallelism is 2", n)
			}
			run = running(pods)
			return len(run) == min(2, 3-done+1)
		})
		p := run[0]
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != j.UID || p.Labels[job.LabelJobName] != "work" ||
			p.Labels[job.LabelLegacyJobName] != "work" || p.Labels[job.LabelLegacyControllerUID] != string(j.UID) {
			t.Fatalf("pod %s: ownerRef %v labels %v", p.Name, ref, p.Labels)
		}
		exit(t, cs, p, corev1.PodSucceeded)
		eventually(t, "status.succeeded", func() bool { return getJob(t, cs, "work").Status.Succeeded == int32(done) })
	}
	var got *batchv1.Job
	eventually(t, "Complete", func() bool {
		got = getJob(t, cs, "work")
		return condition(got, batchv1.JobComplete) != nil
	})
	if condition(got, batchv1.JobSuccessCriteriaMet) == nil || got.Status.CompletionTime == nil || got.Status.StartTime == nil {
		t.Fatalf("status = %+v, want SuccessCriteriaMet, completionTime and startTime", got.Status)
	}
	if got.Status.Active != 0 || got.Status.Succeeded != 3 || got.Status.Failed != 0 {
		t.Fatalf("active/succeeded/failed = %d/%d/%d, want 0/3/0", got.Status.Active, got.Status.Succeeded, got.Status.Failed)
	}
	// Finished Pods are kept for their logs, and no new one starts.
	time.Sleep(200 * time.Millisecond)
	pods := jobPods(t, cs, j)
	if len(pods) != 3 {
		t.Fatalf("%d pods after completion, want the 3 succeeded ones kept", len(pods))
	}
	for _, p := range pods {
		if p.Status.Phase != corev1.PodSucceeded || p.DeletionTimestamp != nil {
			t.Fatalf("pod %s phase %s deleting %v, want kept Succeeded", p.Name, p.Status.Phase, p.DeletionTimestamp != nil)
		}
	}
	events := waitEvent(t, cs, j, "Normal Completed Job completed (job-controller)")
	for _, p := range pods {
		if want := "Normal SuccessfulCreate Created pod: " + p.Name + " (job-controller)"; !slices.Contains(events, want) {
			t.Errorf("events %q lack %q", events, want)
		}
	}
	if n := countPrefix(events, "Normal Completed"); n != 1 {
		t.Errorf("%d Completed events, want 1: %q", n, events)
	}
}

func TestController_backoffLimitExceeded(t *testing.T) {
	cs := start(t)
	j := createJob(t, cs, newJob("flaky", 1, 1, 1))
	for fails := 1; fails <= 2; fails++ {
		var run []corev1.Pod
		eventually(t, "a running pod", func() bool { run = running(jobPods(t, cs, j)); return len(run) == 1 })
		if fails == 2 && condition(getJob(t, cs, "flaky"), batchv1.JobFailed) != nil {
			t.Fatal("Failed after 1 failure with backoffLimit 1")
		}
		exit(t, cs, run[0], corev1.PodFailed)
		eventually(t, "status.failed", func() bool { return getJob(t, cs, "flaky").Status.Failed == int32(fails) })
	}
	var got *batchv1.Job
	eventually(t, "Failed", func() bool { got = getJob(t, cs, "flaky"); return condition(got, batchv1.JobFailed) != nil })
	if c := condition(got, batchv1.JobFailed); c.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("Failed reason = %q, want %q", c.Reason, batchv1.JobReasonBackoffLimitExceeded)
	}
	if condition(got, batchv1.JobFailureTarget) == nil || condition(got, batchv1.JobComplete) != nil {
		t.Fatalf("conditions = %+v", got.Status.Conditions)
	}
	time.Sleep(200 * time.Millisecond)
	pods := jobPods(t, cs, j)
	if len(pods) != 2 || unfinished(pods) != 0 {
		t.Fatalf("%d pods (%d unfinished), want the 2 failed ones and no replacement", len(pods), unfinished(pods))
	}
	waitEvent(t, cs, j, "Warning BackoffLimitExceeded Job has reached the specified backoff limit (job-controller)")
}

func TestController_activeDeadlineExceeded(t *testing.T) {
	cs := start(t)
	spec := newJob("slow", 4, 2, 6)
	deadline := int64(2)
	spec.Spec.ActiveDeadlineSeconds = &deadline
	j := createJob(t, cs, spec)
	eventually(t, "2 running pods", func() bool { return len(running(jobPods(t, cs, j))) == 2 })
	began := time.Now()
	var got *batchv1.Job
	eventually(t, "Failed", func() bool { got = getJob(t, cs, "slow"); return condition(got, batchv1.JobFailed) != nil })
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Failed %v after the pods ran, deadline is 2s", took)
	}
	if c := condition(got, batchv1.JobFailed); c.Reason != batchv1.JobReasonDeadlineExceeded {
		t.Fatalf("Failed reason = %q, want %q", c.Reason, batchv1.JobReasonDeadlineExceeded)
	}
	if got.Status.Active != 0 {
		t.Fatalf("status.active = %d, want 0", got.Status.Active)
	}
	// The stand-in kubelet removes Pods once their deletion starts.
	eventually(t, "active pods deleted", func() bool { return len(jobPods(t, cs, j)) == 0 })
	events := waitEvent(t, cs, j, "Warning DeadlineExceeded Job was active longer than specified deadline (job-controller)")
	eventually(t, "2 SuccessfulDelete events", func() bool {
		events = waitEvent(t, cs, j, events[0])
		return countPrefix(events, "Normal SuccessfulDelete Deleted pod: slow-") == 2
	})
}

func TestNew_validates(t *testing.T) {
	if _, err := job.New(job.Config{}); err == nil {
		t.Fatal("New without Client: want error")
	}
}
