package cronjob

import (
	"fmt"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"

	"kiln.dev/kiln/components/testenv"
)

// TestController_schedules: against the real API server, with the
// controller's clock moved by hand. A due CronJob gets one Job named for
// its scheduled minute; Forbid skips while it runs and runs the missed
// time once it finished; the history limit deletes the oldest finished
// Job; suspend and startingDeadlineSeconds hold runs back.
func TestController_schedules(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cs := env.Clientset
	factory := informers.NewSharedInformerFactory(cs, 0)
	c, err := New(Config{Client: cs, Informers: factory})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var now time.Time
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	t.Cleanup(factory.Shutdown)

	one := int32(1)
	cj, err := cs.BatchV1().CronJobs("default").Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "tick"},
		Spec: batchv1.CronJobSpec{
			Schedule: "*/1 * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent, SuccessfulJobsHistoryLimit: &one,
			JobTemplate: batchv1.JobTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "tick"}},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created := cj.CreationTimestamp.Time
	minute := created.Truncate(time.Minute)
	key := "default/tick"

	// sync once the informers hold what the API says, then wait for the
	// informers to hold what the sync wrote.
	jobs := func() []batchv1.Job {
		t.Helper()
		l, err := cs.BatchV1().Jobs("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	settle := func() {
		t.Helper()
		want := jobs()
		cur, err := cs.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, _ := c.jobLister.List(labels.Everything())
			cached, _ := c.cronLister.CronJobs("default").Get("tick")
			if len(got) == len(want) && cached != nil && cached.ResourceVersion == cur.ResourceVersion && jobsCaughtUp(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("informers did not catch up")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sync := func(at time.Time) {
		t.Helper()
		settle()
		set(at)
		if err := c.sync(ctx, key); err != nil {
			t.Fatalf("sync at %v: %v", at, err)
		}
		settle()
	}
	finish := func(name string) {
		t.Helper()
		j, err := cs.BatchV1().Jobs("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ts := metav1.Now()
		j.Status.StartTime = &ts
		j.Status.CompletionTime = &ts
		j.Status.Succeeded = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
		if _, err := cs.BatchV1().Jobs("default").UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	name := func(at time.Time) string { return fmt.Sprintf("tick-%d", at.Unix()/60) }

	sync(created) // nothing due yet
	if n := len(jobs()); n != 0 {
		t.Fatalf("%d jobs before the first scheduled time", n)
	}
	first := minute.Add(time.Minute)
	sync(first.Add(5 * time.Second))
	js := jobs()
	if len(js) != 1 || js[0].Name != name(first) || js[0].Labels["app"] != "tick" || metav1.GetControllerOf(&js[0]).UID != cj.UID {
		t.Fatalf("after the first scheduled time: %+v", js)
	}
	cur, _ := cs.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
	if len(cur.Status.Active) != 1 || cur.Status.LastScheduleTime == nil || !cur.Status.LastScheduleTime.Time.Equal(first) {
		t.Fatalf("status after the first run: %+v", cur.Status)
	}
	sync(first.Add(5 * time.Second)) // the same time never runs twice
	if n := len(jobs()); n != 1 {
		t.Fatalf("%d jobs after a second sync at the same time", n)
	}

	second := first.Add(time.Minute)
	sync(second.Add(5 * time.Second)) // Forbid: the first still runs
	if n := len(jobs()); n != 1 {
		t.Fatalf("Forbid: %d jobs while one runs", n)
	}
	finish(name(first))
	sync(second.Add(10 * time.Second)) // the missed time runs now
	js = jobs()
	if len(js) != 2 {
		t.Fatalf("after the first finished: %d jobs, want the missed run beside it", len(js))
	}
	cur, _ = cs.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
	if cur.Status.LastSuccessfulTime == nil || len(cur.Status.Active) != 1 || cur.Status.Active[0].Name != name(second) {
		t.Fatalf("status after the second run: %+v", cur.Status)
	}
	finish(name(second))
	sync(second.Add(20 * time.Second)) // history limit 1: the first goes
	js = jobs()
	if len(js) != 1 || js[0].Name != name(second) {
		t.Fatalf("after both finished with a history limit of 1: %v", jobNames(js))
	}

	// Suspended: nothing runs.
	cur, _ = cs.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
	cur.Spec.Suspend = new(true)
	if _, err := cs.BatchV1().CronJobs("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	third := second.Add(time.Minute)
	sync(third.Add(5 * time.Second))
	if js := jobs(); len(js) != 1 {
		t.Fatalf("suspended, yet %v", jobNames(js))
	}
	// Resumed long after with a 30 s starting deadline: the missed time
	// is too old to start.
	cur, _ = cs.BatchV1().CronJobs("default").Get(ctx, "tick", metav1.GetOptions{})
	cur.Spec.Suspend = new(false)
	cur.Spec.StartingDeadlineSeconds = new(int64(30))
	if _, err := cs.BatchV1().CronJobs("default").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sync(third.Add(45 * time.Second))
	if js := jobs(); len(js) != 1 {
		t.Fatalf("past the starting deadline, yet %v", jobNames(js))
	}
	fourth := third.Add(time.Minute)
	sync(fourth.Add(10 * time.Second))
	if js := jobs(); len(js) != 2 || js[1].Name != name(fourth) && js[0].Name != name(fourth) {
		t.Fatalf("within the deadline: %v", jobNames(js))
	}
}

func jobNames(js []batchv1.Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.Name)
	}
	return out
}

// jobsCaughtUp reports whether the cached Jobs are those listed, at the
// same resourceVersions.
func jobsCaughtUp(cached []*batchv1.Job, listed []batchv1.Job) bool {
	rv := map[string]string{}
	for _, j := range listed {
		rv[j.Name] = j.ResourceVersion
	}
	for _, j := range cached {
		if rv[j.Name] != j.ResourceVersion {
			return false
		}
	}
	return true
}
