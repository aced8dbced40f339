package printers

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	batchv1beta1 "k8s.io/api/batch/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

func jobColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Status", Type: "string", Description: "Status of the job."},
		{Name: "Completions", Type: "string", Description: batchv1.JobStatus{}.SwaggerDoc()["succeeded"]},
		{Name: "Duration", Type: "string", Description: "Time required to complete the job."},
		ageColumn(),
		containersColumn(),
		imagesColumn(),
		{Name: "Selector", Type: "string", Priority: 1, Description: batchv1.JobSpec{}.SwaggerDoc()["selector"]},
	}
}

func printJob(job *batchv1.Job, now time.Time) []interface{} {
	var completions string
	if job.Spec.Completions != nil {
		completions = fmt.Sprintf("%d/%d", job.Status.Succeeded, *job.Spec.Completions)
	} else {
		var parallelism int32
		if job.Spec.Parallelism != nil {
			parallelism = *job.Spec.Parallelism
		}
		if parallelism > 1 {
			completions = fmt.Sprintf("%d/1 of %d", job.Status.Succeeded, parallelism)
		} else {
			completions = fmt.Sprintf("%d/1", job.Status.Succeeded)
		}
	}

	var jobDuration string
	switch {
	case job.Status.StartTime == nil:
	case job.Status.CompletionTime == nil:
		jobDuration = duration.HumanDuration(now.Sub(job.Status.StartTime.Time))
	default:
		jobDuration = duration.HumanDuration(job.Status.CompletionTime.Sub(job.Status.StartTime.Time))
	}

	var status string
	switch {
	case hasJobCondition(job.Status.Conditions, batchv1.JobComplete):
		status = "Complete"
	case hasJobCondition(job.Status.Conditions, batchv1.JobFailed):
		status = "Failed"
	case job.DeletionTimestamp != nil:
		status = "Terminating"
	case hasJobCondition(job.Status.Conditions, batchv1.JobSuspended):
		status = "Suspended"
	case hasJobCondition(job.Status.Conditions, batchv1.JobFailureTarget):
		status = "FailureTarget"
	default:
		status = "Running"
	}

	names, images := layoutContainerCells(job.Spec.Template.Spec.Containers)
	return []interface{}{
		job.Name, status, completions, jobDuration, age(job.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(job.Spec.Selector),
	}
}

// hasJobCondition reports whether the first condition of type t is True.
func hasJobCondition(conditions []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	for _, c := range conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func cronJobColumns() []metav1.TableColumnDefinition {
	spec := batchv1beta1.CronJobSpec{}.SwaggerDoc()
	status := batchv1beta1.CronJobStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Schedule", Type: "string", Description: spec["schedule"]},
		{Name: "Timezone", Type: "string", Description: spec["timeZone"]},
		{Name: "Suspend", Type: "boolean", Description: spec["suspend"]},
		{Name: "Active", Type: "integer", Description: status["active"]},
		{Name: "Last Schedule", Type: "string", Description: status["lastScheduleTime"]},
		ageColumn(),
		containersColumn(),
		imagesColumn(),
		{Name: "Selector", Type: "string", Priority: 1, Description: batchv1.JobSpec{}.SwaggerDoc()["selector"]},
	}
}

func printCronJob(cj *batchv1.CronJob, now time.Time) []interface{} {
	lastScheduleTime := "<none>"
	if cj.Status.LastScheduleTime != nil {
		lastScheduleTime = age(*cj.Status.LastScheduleTime, now)
	}
	timeZone := "<none>"
	if cj.Spec.TimeZone != nil {
		timeZone = *cj.Spec.TimeZone
	}
	// kube prints Suspend as a string although the column says boolean.
	suspend := "<unset>"
	if cj.Spec.Suspend != nil {
		suspend = "False"
		if *cj.Spec.Suspend {
			suspend = "True"
		}
	}
	names, images := layoutContainerCells(cj.Spec.JobTemplate.Spec.Template.Spec.Containers)
	return []interface{}{
		cj.Name, cj.Spec.Schedule, timeZone, suspend, int64(len(cj.Status.Active)), lastScheduleTime,
		age(cj.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(cj.Spec.JobTemplate.Spec.Selector),
	}
}
