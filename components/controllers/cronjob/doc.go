// Package cronjob is the CronJob controller: it creates a Job from each
// CronJob's jobTemplate at every scheduled time, as kube's cronjob
// controller (v2) does.
//
// What it keeps from kube: the schedule in the standard cron syntax and
// its "@" shorthands (robfig/cron, as kube), in spec.timeZone or the
// controller's local zone; Jobs named NAME-<minutes since the epoch of
// the scheduled time>, so that a time is never run twice; of the times
// missed since the last one (or the CronJob's creation) only the newest
// runs, unless it is older than startingDeadlineSeconds; concurrencyPolicy
// Allow, Forbid (skip while a Job runs) and Replace (delete the running
// Jobs first); suspend; status.active, lastScheduleTime and
// lastSuccessfulTime; and the history limits, which delete the oldest
// finished Jobs beyond successfulJobsHistoryLimit and
// failedJobsHistoryLimit.
package cronjob
