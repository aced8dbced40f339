package admission

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidate_Deployment(t *testing.T) {
	const tmpl = "spec.template"
	tests := []struct {
		name   string
		mutate func(d *appsv1.Deployment)
		want   []wantErr
	}{
		{"valid", func(*appsv1.Deployment) {}, nil},
		{"name invalid", func(d *appsv1.Deployment) { d.Name = "-web" }, []wantErr{invalid("metadata.name")}},
		{"replicas negative", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(-1)) }, []wantErr{invalid("spec.replicas")}},
		{"replicas zero", func(d *appsv1.Deployment) { d.Spec.Replicas = new(int32(0)) }, nil},
		{"selector required", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, []wantErr{required("spec.selector")}},
		{"selector empty", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, []wantErr{invalid("spec.selector")}},
		{"selector invalid", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near"}}
		}, []wantErr{invalid("spec.selector.matchExpressions[0].operator")}},
		{"selector does not match template", func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "api"} },
			[]wantErr{invalid(tmpl + ".metadata.labels")}},
		{"selector expression does not match template", func(d *appsv1.Deployment) {
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"frontend"}}}
		}, []wantErr{invalid(tmpl + ".metadata.labels")}},
		{"template pod spec validated", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "" },
			[]wantErr{required(tmpl + ".spec.containers[0].image")}},
		{"template port validated", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 70000 },
			[]wantErr{invalid(tmpl + ".spec.containers[0].ports[0].containerPort")}},
		{"template restartPolicy must be Always", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure },
			[]wantErr{notSupported(tmpl + ".spec.restartPolicy")}},
		{"template activeDeadlineSeconds forbidden", func(d *appsv1.Deployment) { d.Spec.Template.Spec.ActiveDeadlineSeconds = new(int64(60)) },
			[]wantErr{forbidden(tmpl + ".spec.activeDeadlineSeconds")}},
		{"strategy type unsupported", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = "BlueGreen" },
			[]wantErr{notSupported("spec.strategy")}},
		{"recreate with rollingUpdate", func(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType },
			[]wantErr{forbidden("spec.strategy.rollingUpdate")}},
		{"recreate", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		}, nil},
		{"maxSurge and maxUnavailable both 0", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = new(intstr.FromInt32(0))
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("0%"))
		}, []wantErr{invalid("spec.strategy.rollingUpdate.maxUnavailable")}},
		{"maxSurge 0 alone is fine", func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = new(intstr.FromInt32(0)) }, nil},
		{"maxUnavailable bad percent", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("half"))
		},
			[]wantErr{invalid("spec.strategy.rollingUpdate.maxUnavailable")}},
		{"maxUnavailable over 100%", func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxUnavailable = new(intstr.FromString("150%"))
		},
			[]wantErr{invalid("spec.strategy.rollingUpdate.maxUnavailable")}},
		{"maxSurge negative", func(d *appsv1.Deployment) { d.Spec.Strategy.RollingUpdate.MaxSurge = new(intstr.FromInt32(-1)) },
			[]wantErr{invalid("spec.strategy.rollingUpdate.maxSurge")}},
		{"revisionHistoryLimit negative", func(d *appsv1.Deployment) { d.Spec.RevisionHistoryLimit = new(int32(-1)) },
			[]wantErr{invalid("spec.revisionHistoryLimit")}},
		{"minReadySeconds negative", func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = -5 },
			[]wantErr{invalid("spec.minReadySeconds")}},
		{"progressDeadlineSeconds not above minReadySeconds", func(d *appsv1.Deployment) { d.Spec.MinReadySeconds = 600 },
			[]wantErr{invalid("spec.progressDeadlineSeconds")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := validDeployment()
			Default(d)
			tc.mutate(d)
			checkErrs(t, Validate(d, true), tc.want...)
		})
	}
}

func TestValidate_ReplicaSet(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(rs *appsv1.ReplicaSet)
		want   []wantErr
	}{
		{"valid", func(*appsv1.ReplicaSet) {}, nil},
		{"selector required", func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = nil }, []wantErr{required("spec.selector")}},
		{"selector empty", func(rs *appsv1.ReplicaSet) { rs.Spec.Selector = &metav1.LabelSelector{} }, []wantErr{invalid("spec.selector")}},
		{"selector mismatch", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Labels = nil }, []wantErr{invalid("spec.template.metadata.labels")}},
		{"replicas negative", func(rs *appsv1.ReplicaSet) { rs.Spec.Replicas = new(int32(-2)) }, []wantErr{invalid("spec.replicas")}},
		{"restartPolicy must be Always", func(rs *appsv1.ReplicaSet) { rs.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			[]wantErr{notSupported("spec.template.spec.restartPolicy")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := validReplicaSet()
			Default(rs)
			tc.mutate(rs)
			checkErrs(t, Validate(rs, true), tc.want...)
		})
	}
}

func TestValidate_DaemonSet(t *testing.T) {
	ru := "spec.updateStrategy.rollingUpdate"
	tests := []struct {
		name   string
		mutate func(ds *appsv1.DaemonSet)
		want   []wantErr
	}{
		{"valid", func(*appsv1.DaemonSet) {}, nil},
		{"selector required", func(ds *appsv1.DaemonSet) { ds.Spec.Selector = nil }, []wantErr{required("spec.selector")}},
		{"selector empty", func(ds *appsv1.DaemonSet) { ds.Spec.Selector = &metav1.LabelSelector{} }, []wantErr{invalid("spec.selector")}},
		{"selector mismatch", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Labels = map[string]string{"app": "other"} },
			[]wantErr{invalid("spec.template.metadata.labels")}},
		{"update strategy unsupported", func(ds *appsv1.DaemonSet) { ds.Spec.UpdateStrategy.Type = "Canary" },
			[]wantErr{notSupported("spec.updateStrategy")}},
		{"on delete", func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
		}, nil},
		{"both maxSurge and maxUnavailable", func(ds *appsv1.DaemonSet) { ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = new(intstr.FromInt32(1)) },
			[]wantErr{invalid(ru + ".maxSurge")}},
		{"neither maxSurge nor maxUnavailable", func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(0))
		}, []wantErr{required(ru + ".maxUnavailable")}},
		{"surge only", func(ds *appsv1.DaemonSet) {
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(0))
			ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge = new(intstr.FromString("10%"))
		}, nil},
		{"revisionHistoryLimit negative", func(ds *appsv1.DaemonSet) { ds.Spec.RevisionHistoryLimit = new(int32(-1)) },
			[]wantErr{invalid("spec.revisionHistoryLimit")}},
		{"activeDeadlineSeconds forbidden", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.ActiveDeadlineSeconds = new(int64(1)) },
			[]wantErr{forbidden("spec.template.spec.activeDeadlineSeconds")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := validDaemonSet()
			Default(ds)
			tc.mutate(ds)
			checkErrs(t, Validate(ds, true), tc.want...)
		})
	}
}

func TestValidate_StatefulSet(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(ss *appsv1.StatefulSet)
		want   []wantErr
	}{
		{"valid", func(*appsv1.StatefulSet) {}, nil},
		{"name must be a label", func(ss *appsv1.StatefulSet) { ss.Name = "db.primary" }, []wantErr{invalid("metadata.name")}},
		{"selector required", func(ss *appsv1.StatefulSet) { ss.Spec.Selector = nil }, []wantErr{required("spec.selector")}},
		{"selector mismatch", func(ss *appsv1.StatefulSet) { ss.Spec.Selector.MatchLabels["role"] = "primary" },
			[]wantErr{invalid("spec.template.metadata.labels")}},
		{"podManagementPolicy invalid", func(ss *appsv1.StatefulSet) { ss.Spec.PodManagementPolicy = "Random" },
			[]wantErr{invalid("spec.podManagementPolicy")}},
		{"updateStrategy invalid", func(ss *appsv1.StatefulSet) { ss.Spec.UpdateStrategy.Type = "Canary" },
			[]wantErr{invalid("spec.updateStrategy")}},
		{"OnDelete with rollingUpdate", func(ss *appsv1.StatefulSet) { ss.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType },
			[]wantErr{invalid("spec.updateStrategy.rollingUpdate")}},
		{"partition negative", func(ss *appsv1.StatefulSet) { ss.Spec.UpdateStrategy.RollingUpdate.Partition = new(int32(-1)) },
			[]wantErr{invalid("spec.updateStrategy.rollingUpdate.partition")}},
		{"maxUnavailable zero", func(ss *appsv1.StatefulSet) {
			ss.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(0))
		},
			[]wantErr{invalid("spec.updateStrategy.rollingUpdate.maxUnavailable")}},
		{"retention policy unsupported", func(ss *appsv1.StatefulSet) { ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled = "Archive" },
			[]wantErr{notSupported("spec.persistentVolumeClaimRetentionPolicy.whenScaled")}},
		{"replicas negative", func(ss *appsv1.StatefulSet) { ss.Spec.Replicas = new(int32(-1)) }, []wantErr{invalid("spec.replicas")}},
		{"claim template needs storage", func(ss *appsv1.StatefulSet) { ss.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests = nil },
			[]wantErr{required("spec.volumeClaimTemplates[0].spec.resources[storage]")}},
		{"claim template needs access modes", func(ss *appsv1.StatefulSet) { ss.Spec.VolumeClaimTemplates[0].Spec.AccessModes = nil },
			[]wantErr{required("spec.volumeClaimTemplates[0].spec.accessModes")}},
		{"mount of unknown claim", func(ss *appsv1.StatefulSet) { ss.Spec.VolumeClaimTemplates[0].Name = "storage" },
			[]wantErr{notFound("spec.template.spec.containers[0].volumeMounts[2].name")}},
		{"template pod spec validated", func(ss *appsv1.StatefulSet) { ss.Spec.Template.Spec.Containers[0].Name = "DB" },
			[]wantErr{invalid("spec.template.spec.containers[0].name")}},
		{"restartPolicy must be Always", func(ss *appsv1.StatefulSet) { ss.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever },
			[]wantErr{notSupported("spec.template.spec.restartPolicy")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ss := validStatefulSet()
			Default(ss)
			tc.mutate(ss)
			checkErrs(t, Validate(ss, true), tc.want...)
		})
	}
}

func TestValidate_ReplicationController(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(rc *corev1.ReplicationController)
		want   []wantErr
	}{
		{"valid", func(*corev1.ReplicationController) {}, nil},
		{"selector required", func(rc *corev1.ReplicationController) { rc.Spec.Selector = nil }, []wantErr{required("spec.selector")}},
		{"selector mismatch", func(rc *corev1.ReplicationController) { rc.Spec.Selector = map[string]string{"app": "new"} },
			[]wantErr{invalid("spec.template.metadata.labels")}},
		{"template required", func(rc *corev1.ReplicationController) { rc.Spec.Template = nil }, []wantErr{required("spec.template")}},
		{"replicas negative", func(rc *corev1.ReplicationController) { rc.Spec.Replicas = new(int32(-1)) }, []wantErr{invalid("spec.replicas")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc := validReplicationController()
			Default(rc)
			tc.mutate(rc)
			checkErrs(t, Validate(rc, true), tc.want...)
		})
	}
}

func TestValidate_Job(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(j *batchv1.Job)
		want   []wantErr
	}{
		{"valid", func(*batchv1.Job) {}, nil},
		{"restartPolicy required", func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = "" },
			[]wantErr{required("spec.template.spec.restartPolicy")}},
		{"restartPolicy Always", func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways },
			[]wantErr{notSupported("spec.template.spec.restartPolicy")}},
		{"restartPolicy OnFailure", func(j *batchv1.Job) { j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure }, nil},
		{"completions negative", func(j *batchv1.Job) { j.Spec.Completions = new(int32(-1)) }, []wantErr{invalid("spec.completions")}},
		{"parallelism negative", func(j *batchv1.Job) { j.Spec.Parallelism = new(int32(-1)) }, []wantErr{invalid("spec.parallelism")}},
		{"backoffLimit negative", func(j *batchv1.Job) { j.Spec.BackoffLimit = new(int32(-1)) }, []wantErr{invalid("spec.backoffLimit")}},
		{"activeDeadlineSeconds negative", func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = new(int64(-1)) },
			[]wantErr{invalid("spec.activeDeadlineSeconds")}},
		{"completionMode unsupported", func(j *batchv1.Job) { j.Spec.CompletionMode = new(batchv1.CompletionMode("Ordered")) },
			[]wantErr{notSupported("spec.completionMode")}},
		{"indexed needs completions", func(j *batchv1.Job) {
			j.Spec.CompletionMode = new(batchv1.IndexedCompletion)
			j.Spec.Completions = nil
		}, []wantErr{required("spec.completions")}},
		{"selector mismatch", func(j *batchv1.Job) { j.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = "other" },
			[]wantErr{invalid("spec.template.metadata.labels")}},
		{"manual selector required", func(j *batchv1.Job) {
			j.Spec.ManualSelector = new(true)
			j.Spec.Selector = nil
		}, []wantErr{required("spec.selector")}},
		{"template pod spec validated", func(j *batchv1.Job) { j.Spec.Template.Spec.Containers = nil },
			[]wantErr{required("spec.template.spec.containers")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := validJob()
			Default(j)
			tc.mutate(j)
			checkErrs(t, Validate(j, true), tc.want...)
		})
	}
}

func TestValidate_CronJob(t *testing.T) {
	const jt = "spec.jobTemplate.spec"
	tests := []struct {
		name   string
		mutate func(cj *batchv1.CronJob)
		want   []wantErr
	}{
		{"valid", func(*batchv1.CronJob) {}, nil},
		{"name too long", func(cj *batchv1.CronJob) { cj.Name = strings.Repeat("r", 53) }, []wantErr{invalid("metadata.name")}},
		{"schedule required", func(cj *batchv1.CronJob) { cj.Spec.Schedule = "" }, []wantErr{required("spec.schedule")}},
		{"schedule invalid", func(cj *batchv1.CronJob) { cj.Spec.Schedule = "every five minutes" }, []wantErr{invalid("spec.schedule")}},
		{"schedule descriptor", func(cj *batchv1.CronJob) { cj.Spec.Schedule = "@hourly" }, nil},
		{"schedule every", func(cj *batchv1.CronJob) { cj.Spec.Schedule = "@every 1h30m" }, nil},
		{"schedule with TZ", func(cj *batchv1.CronJob) { cj.Spec.Schedule = "TZ=UTC 0 * * * *" }, []wantErr{invalid("spec.schedule")}},
		{"timeZone", func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Etc/UTC") }, nil},
		{"timeZone unknown", func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Mars/Olympus") }, []wantErr{invalid("spec.timeZone")}},
		{"timeZone Local", func(cj *batchv1.CronJob) { cj.Spec.TimeZone = new("Local") }, []wantErr{invalid("spec.timeZone")}},
		{"concurrencyPolicy unsupported", func(cj *batchv1.CronJob) { cj.Spec.ConcurrencyPolicy = "Queue" },
			[]wantErr{notSupported("spec.concurrencyPolicy")}},
		{"history limit negative", func(cj *batchv1.CronJob) { cj.Spec.SuccessfulJobsHistoryLimit = new(int32(-1)) },
			[]wantErr{invalid("spec.successfulJobsHistoryLimit")}},
		{"startingDeadlineSeconds negative", func(cj *batchv1.CronJob) { cj.Spec.StartingDeadlineSeconds = new(int64(-10)) },
			[]wantErr{invalid("spec.startingDeadlineSeconds")}},
		{"job template restartPolicy required", func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = "" },
			[]wantErr{required(jt + ".template.spec.restartPolicy")}},
		{"job template restartPolicy Always", func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}, []wantErr{notSupported(jt + ".template.spec.restartPolicy")}},
		{"job template backoffLimit negative", func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.BackoffLimit = new(int32(-1)) },
			[]wantErr{invalid(jt + ".backoffLimit")}},
		{"job template selector", func(cj *batchv1.CronJob) {
			cj.Spec.JobTemplate.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
		}, []wantErr{invalid(jt + ".selector")}},
		{"job template manualSelector", func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.ManualSelector = new(true) },
			[]wantErr{notSupported(jt + ".manualSelector")}},
		{"job template container validated", func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image = "" },
			[]wantErr{required(jt + ".template.spec.containers[0].image")}},
		{"job template labels", func(cj *batchv1.CronJob) { cj.Spec.JobTemplate.Labels = map[string]string{"x": "bad value"} },
			[]wantErr{invalid("spec.jobTemplate.metadata.labels")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cj := validCronJob()
			Default(cj)
			tc.mutate(cj)
			checkErrs(t, Validate(cj, true), tc.want...)
		})
	}
}
