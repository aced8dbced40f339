package printers

import (
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func job(mutate func(*batchv1.Job)) *batchv1.Job {
	j := &batchv1.Job{
		ObjectMeta: objMeta("migrate"),
		Spec: batchv1.JobSpec{
			Completions: ptr(int32(1)),
			Parallelism: ptr(int32(1)),
			Selector:    webSelector,
			Template:    twoContainers,
		},
		Status: batchv1.JobStatus{StartTime: agoPtr(4 * time.Minute)},
	}
	mutate(j)
	return j
}

func jobCondition(t batchv1.JobConditionType) batchv1.JobCondition {
	return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue}
}

func TestRow_jobs(t *testing.T) {
	row := func(status, completions, duration string) []interface{} {
		return []interface{}{"migrate", status, completions, duration, "5m", "web,log", "nginx:1.27,busybox:1.36", "app=web"}
	}
	runRows(t, "batch", "jobs", []rowCase{
		{
			name: "running",
			obj:  job(func(*batchv1.Job) {}),
			want: row("Running", "0/1", "4m"),
		},
		{
			name: "complete",
			obj: job(func(j *batchv1.Job) {
				j.Status.Succeeded = 1
				j.Status.CompletionTime = agoPtr(3*time.Minute + 20*time.Second)
				j.Status.Conditions = []batchv1.JobCondition{jobCondition(batchv1.JobSuccessCriteriaMet), jobCondition(batchv1.JobComplete)}
			}),
			want: row("Complete", "1/1", "40s"),
		},
		{
			name: "failed",
			obj: job(func(j *batchv1.Job) {
				j.Status.Conditions = []batchv1.JobCondition{jobCondition(batchv1.JobFailureTarget), jobCondition(batchv1.JobFailed)}
			}),
			want: row("Failed", "0/1", "4m"),
		},
		{
			name: "suspended, not started, parallel without completions",
			obj: job(func(j *batchv1.Job) {
				j.Spec.Completions, j.Spec.Parallelism = nil, ptr(int32(3))
				j.Status.StartTime = nil
				j.Status.Conditions = []batchv1.JobCondition{jobCondition(batchv1.JobSuspended)}
			}),
			want: row("Suspended", "0/1 of 3", ""),
		},
		{
			name: "failure target",
			obj: job(func(j *batchv1.Job) {
				j.Status.Conditions = []batchv1.JobCondition{jobCondition(batchv1.JobFailureTarget)}
			}),
			want: row("FailureTarget", "0/1", "4m"),
		},
		{
			name: "terminating",
			obj:  job(func(j *batchv1.Job) { j.DeletionTimestamp = agoPtr(time.Second) }),
			want: row("Terminating", "0/1", "4m"),
		},
	})
}

func TestRow_cronJobs(t *testing.T) {
	tmpl := batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Selector: webSelector, Template: twoContainers}}
	runRows(t, "batch", "cronjobs", []rowCase{
		{
			name: "scheduled",
			obj: &batchv1.CronJob{
				ObjectMeta: objMeta("backup"),
				Spec:       batchv1.CronJobSpec{Schedule: "*/5 * * * *", TimeZone: ptr("Etc/UTC"), Suspend: ptr(false), JobTemplate: tmpl},
				Status:     batchv1.CronJobStatus{Active: []corev1.ObjectReference{{Name: "backup-1"}}, LastScheduleTime: agoPtr(90 * time.Second)},
			},
			want: []interface{}{"backup", "*/5 * * * *", "Etc/UTC", "False", int64(1), "90s", "5m", "web,log", "nginx:1.27,busybox:1.36", "app=web"},
		},
		{
			name: "never scheduled",
			obj: &batchv1.CronJob{
				ObjectMeta: objMeta("backup"),
				Spec:       batchv1.CronJobSpec{Schedule: "@daily", Suspend: ptr(true)},
			},
			want: []interface{}{"backup", "@daily", "<none>", "True", int64(0), "<none>", "5m", "", "", "<none>"},
		},
	})
}
