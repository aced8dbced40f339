// Package job is kiln's Job controller, a subset of kube's: NonIndexed
// Jobs only. For each Job it keeps min(parallelism, completions still
// missing) Pods active, built from spec.template with a controller
// ownerReference and the batch.kubernetes.io/controller-uid and
// batch.kubernetes.io/job-name labels (and the legacy controller-uid and
// job-name). It counts Succeeded and Failed Pods into status.succeeded and
// status.failed, and keeps status.active, ready, terminating and
// startTime.
//
// A Job ends Failed (after FailureTarget) with reason BackoffLimitExceeded
// once more Pods failed than spec.backoffLimit, or DeadlineExceeded once
// it ran longer than spec.activeDeadlineSeconds; its active Pods are then
// deleted. It ends Complete (after SuccessCriteriaMet, as kube 1.31+ does)
// with status.completionTime once completions Pods succeeded. Finished
// Pods are kept, for their logs.
//
// With Config.Events it records kube's Events about the Job: every Pod
// created or deleted (SuccessfulCreate, SuccessfulDelete, FailedCreate,
// FailedDelete) and its end (Completed; BackoffLimitExceeded or
// DeadlineExceeded, with the Failed condition's message), once.
//
// Not implemented: Indexed completion, podFailurePolicy, successPolicy,
// podReplacementPolicy, the job-tracking finalizer (a Pod deleted before it
// finished is not counted), the exponential delay before replacing failed
// Pods, adoption of orphaned Pods and the Suspended condition (a suspended
// Job simply has no active Pods).
//
//	c, err := job.New(job.Config{Client: cs, Informers: f})
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package job
