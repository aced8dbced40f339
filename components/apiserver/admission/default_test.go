package admission

import (
	"math"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// defaultCase defaults obj and compares the value get reads from it with
// want.
type defaultCase struct {
	name string
	obj  runtime.Object
	get  func(runtime.Object) any
	want any
}

func runDefaultCases(t *testing.T, tests []defaultCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Default(tc.obj)
			if got := tc.get(tc.obj); !semanticEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func minimalPod(mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1.27"}}},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func pod(o runtime.Object) *corev1.Pod           { return o.(*corev1.Pod) }
func ctr(o runtime.Object) *corev1.Container     { return &pod(o).Spec.Containers[0] }
func deploy(o runtime.Object) *appsv1.Deployment { return o.(*appsv1.Deployment) }
func job(o runtime.Object) *batchv1.Job          { return o.(*batchv1.Job) }
func svc(o runtime.Object) *corev1.Service       { return o.(*corev1.Service) }

func TestDefault_podSpec(t *testing.T) {
	runDefaultCases(t, []defaultCase{
		{"restartPolicy", minimalPod(nil), func(o runtime.Object) any { return pod(o).Spec.RestartPolicy }, corev1.RestartPolicyAlways},
		{"restartPolicy kept", minimalPod(func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }),
			func(o runtime.Object) any { return pod(o).Spec.RestartPolicy }, corev1.RestartPolicyNever},
		{"terminationGracePeriodSeconds", minimalPod(nil), func(o runtime.Object) any { return pod(o).Spec.TerminationGracePeriodSeconds }, new(int64(30))},
		{"terminationGracePeriodSeconds kept", minimalPod(func(p *corev1.Pod) { p.Spec.TerminationGracePeriodSeconds = new(int64(0)) }),
			func(o runtime.Object) any { return pod(o).Spec.TerminationGracePeriodSeconds }, new(int64(0))},
		{"dnsPolicy", minimalPod(nil), func(o runtime.Object) any { return pod(o).Spec.DNSPolicy }, corev1.DNSClusterFirst},
		{"schedulerName", minimalPod(nil), func(o runtime.Object) any { return pod(o).Spec.SchedulerName }, "default-scheduler"},
		{"securityContext", minimalPod(nil), func(o runtime.Object) any { return pod(o).Spec.SecurityContext }, &corev1.PodSecurityContext{}},
		{"enableServiceLinks", minimalPod(nil), func(o runtime.Object) any { return pod(o).Spec.EnableServiceLinks }, new(true)},
		{"enableServiceLinks kept", minimalPod(func(p *corev1.Pod) { p.Spec.EnableServiceLinks = new(false) }),
			func(o runtime.Object) any { return pod(o).Spec.EnableServiceLinks }, new(false)},
		{"terminationMessagePath", minimalPod(nil), func(o runtime.Object) any { return ctr(o).TerminationMessagePath }, "/dev/termination-log"},
		{"terminationMessagePolicy", minimalPod(nil), func(o runtime.Object) any { return ctr(o).TerminationMessagePolicy }, corev1.TerminationMessageReadFile},
		{"container port protocol", minimalPod(func(p *corev1.Pod) { p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80}} }),
			func(o runtime.Object) any { return ctr(o).Ports[0].Protocol }, corev1.ProtocolTCP},
		{"container port protocol kept", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
		}), func(o runtime.Object) any { return ctr(o).Ports[0].Protocol }, corev1.ProtocolUDP},
		{"init container defaulted", minimalPod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "i", Image: "busybox"}}
		}), func(o runtime.Object) any {
			c := pod(o).Spec.InitContainers[0]
			return []any{c.ImagePullPolicy, c.TerminationMessagePath, c.TerminationMessagePolicy}
		}, []any{corev1.PullAlways, "/dev/termination-log", corev1.TerminationMessageReadFile}},
		{"ephemeral container defaulted", minimalPod(func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "busybox:1.36"}}}
		}), func(o runtime.Object) any { return pod(o).Spec.EphemeralContainers[0].ImagePullPolicy }, corev1.PullIfNotPresent},
		{"probe numbers", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}), func(o runtime.Object) any {
			p := ctr(o).LivenessProbe
			return []int32{p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold, p.InitialDelaySeconds}
		}, []int32{1, 10, 1, 3, 0}},
		{"probe numbers kept", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
				ProbeHandler:   corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
				TimeoutSeconds: 5, PeriodSeconds: 2, SuccessThreshold: 2, FailureThreshold: 9,
			}
		}), func(o runtime.Object) any {
			p := ctr(o).ReadinessProbe
			return []int32{p.TimeoutSeconds, p.PeriodSeconds, p.SuccessThreshold, p.FailureThreshold}
		}, []int32{5, 2, 2, 9}},
		{"probe httpGet scheme and path", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}}}
		}), func(o runtime.Object) any { return ctr(o).StartupProbe.HTTPGet },
			&corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080), Scheme: corev1.URISchemeHTTP}},
		{"probe grpc service", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9090}}}
		}), func(o runtime.Object) any { return ctr(o).LivenessProbe.GRPC.Service }, new("")},
		{"lifecycle httpGet", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}}
		}), func(o runtime.Object) any { return ctr(o).Lifecycle.PreStop.HTTPGet.Scheme }, corev1.URISchemeHTTP},
		{"env fieldRef apiVersion", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "NODE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}}
		}), func(o runtime.Object) any { return ctr(o).Env[0].ValueFrom.FieldRef.APIVersion }, "v1"},
		{"requests from limits", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			}
		}), func(o runtime.Object) any { return ctr(o).Resources.Requests },
			corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("1Gi")}},
		{"resources rounded up to milli", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.0001")}
		}), func(o runtime.Object) any { return ctr(o).Resources.Requests },
			corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1m")}},
		{"hostNetwork hostPort", minimalPod(func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 9100}}
		}), func(o runtime.Object) any { return ctr(o).Ports[0].HostPort }, int32(9100)},
		{"no hostPort without hostNetwork", minimalPod(func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 9100}}
		}), func(o runtime.Object) any { return ctr(o).Ports[0].HostPort }, int32(0)},
	})
}

func TestDefault_imagePullPolicy(t *testing.T) {
	tests := []struct {
		name  string
		image string
		want  corev1.PullPolicy
	}{
		{"no tag", "nginx", corev1.PullAlways},
		{"latest tag", "nginx:latest", corev1.PullAlways},
		{"version tag", "nginx:1.27", corev1.PullIfNotPresent},
		{"registry port no tag", "registry.local:5000/team/app", corev1.PullAlways},
		{"registry port and tag", "registry.local:5000/team/app:v3", corev1.PullIfNotPresent},
		{"digest", "nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31", corev1.PullIfNotPresent},
		{"latest and digest", "nginx:latest@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31", corev1.PullAlways},
		{"empty", "", corev1.PullIfNotPresent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := minimalPod(func(p *corev1.Pod) { p.Spec.Containers[0].Image = tc.image })
			Default(p)
			if got := p.Spec.Containers[0].ImagePullPolicy; got != tc.want {
				t.Errorf("image %q: got %q, want %q", tc.image, got, tc.want)
			}
		})
	}
	t.Run("explicit kept", func(t *testing.T) {
		p := minimalPod(func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever })
		Default(p)
		if got := p.Spec.Containers[0].ImagePullPolicy; got != corev1.PullNever {
			t.Errorf("got %q, want Never", got)
		}
	})
}

func TestDefault_volumes(t *testing.T) {
	withVolume := func(src corev1.VolumeSource) *corev1.Pod {
		return minimalPod(func(p *corev1.Pod) { p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: src}} })
	}
	vol := func(o runtime.Object) *corev1.VolumeSource { return &pod(o).Spec.Volumes[0].VolumeSource }
	runDefaultCases(t, []defaultCase{
		{"no source is emptyDir", withVolume(corev1.VolumeSource{}), func(o runtime.Object) any { return vol(o).EmptyDir }, &corev1.EmptyDirVolumeSource{}},
		{"secret defaultMode", withVolume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}),
			func(o runtime.Object) any { return vol(o).Secret.DefaultMode }, new(int32(0o644))},
		{"configMap defaultMode", withVolume(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}),
			func(o runtime.Object) any { return vol(o).ConfigMap.DefaultMode }, new(int32(420))},
		{"configMap defaultMode kept", withVolume(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{DefaultMode: new(int32(0o400))}}),
			func(o runtime.Object) any { return vol(o).ConfigMap.DefaultMode }, new(int32(0o400))},
		{"downwardAPI defaultMode and apiVersion", withVolume(corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
		}}), func(o runtime.Object) any {
			return []any{vol(o).DownwardAPI.DefaultMode, vol(o).DownwardAPI.Items[0].FieldRef.APIVersion}
		}, []any{new(int32(420)), "v1"}},
		{"projected defaultMode and token expiry", withVolume(corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}},
		}}), func(o runtime.Object) any {
			return []any{vol(o).Projected.DefaultMode, vol(o).Projected.Sources[0].ServiceAccountToken.ExpirationSeconds}
		}, []any{new(int32(420)), new(int64(3600))}},
		{"hostPath type", withVolume(corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/data"}}),
			func(o runtime.Object) any { return vol(o).HostPath.Type }, new(corev1.HostPathUnset)},
	})
}

func TestDefault_workloads(t *testing.T) {
	runDefaultCases(t, []defaultCase{
		{"deployment replicas", validDeployment(), func(o runtime.Object) any { return deploy(o).Spec.Replicas }, new(int32(3))},
		{"deployment replicas unset", &appsv1.Deployment{}, func(o runtime.Object) any { return deploy(o).Spec.Replicas }, new(int32(1))},
		{"deployment strategy", &appsv1.Deployment{}, func(o runtime.Object) any { return deploy(o).Spec.Strategy }, appsv1.DeploymentStrategy{
			Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: new(intstr.FromString("25%")),
				MaxSurge:       new(intstr.FromString("25%")),
			},
		}},
		{"deployment recreate strategy", &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}}},
			func(o runtime.Object) any { return deploy(o).Spec.Strategy.RollingUpdate }, (*appsv1.RollingUpdateDeployment)(nil)},
		{"deployment revisionHistoryLimit", &appsv1.Deployment{}, func(o runtime.Object) any { return deploy(o).Spec.RevisionHistoryLimit }, new(int32(10))},
		{"deployment progressDeadlineSeconds", &appsv1.Deployment{}, func(o runtime.Object) any { return deploy(o).Spec.ProgressDeadlineSeconds }, new(int32(600))},
		{"deployment template restartPolicy", &appsv1.Deployment{}, func(o runtime.Object) any { return deploy(o).Spec.Template.Spec.RestartPolicy }, corev1.RestartPolicyAlways},
		{"deployment template has no enableServiceLinks", &appsv1.Deployment{}, func(o runtime.Object) any { return deploy(o).Spec.Template.Spec.EnableServiceLinks }, (*bool)(nil)},
		{"deployment template containers", validDeployment(), func(o runtime.Object) any {
			c := deploy(o).Spec.Template.Spec.Containers[0]
			return []any{c.ImagePullPolicy, c.Ports[0].Protocol, c.LivenessProbe.HTTPGet.Scheme}
		}, []any{corev1.PullIfNotPresent, corev1.ProtocolTCP, corev1.URISchemeHTTP}},
		{"replicaset replicas", &appsv1.ReplicaSet{}, func(o runtime.Object) any { return o.(*appsv1.ReplicaSet).Spec.Replicas }, new(int32(1))},
		{"replicaset template", &appsv1.ReplicaSet{}, func(o runtime.Object) any { return o.(*appsv1.ReplicaSet).Spec.Template.Spec.DNSPolicy }, corev1.DNSClusterFirst},
		{"replicationcontroller replicas", &corev1.ReplicationController{}, func(o runtime.Object) any { return o.(*corev1.ReplicationController).Spec.Replicas }, new(int32(1))},
		{"replicationcontroller selector and labels from template", validReplicationController(), func(o runtime.Object) any {
			rc := o.(*corev1.ReplicationController)
			return []map[string]string{rc.Spec.Selector, rc.Labels}
		}, []map[string]string{{"app": "legacy"}, {"app": "legacy"}}},
		{"replicationcontroller template", validReplicationController(), func(o runtime.Object) any {
			return o.(*corev1.ReplicationController).Spec.Template.Spec.SchedulerName
		}, "default-scheduler"},
		{"statefulset", &appsv1.StatefulSet{}, func(o runtime.Object) any {
			s := o.(*appsv1.StatefulSet).Spec
			return []any{s.Replicas, s.PodManagementPolicy, s.UpdateStrategy, s.RevisionHistoryLimit, s.PersistentVolumeClaimRetentionPolicy}
		}, []any{
			new(int32(1)), appsv1.OrderedReadyPodManagement,
			appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: new(int32(0))},
			},
			new(int32(10)),
			&appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		}},
		{"statefulset OnDelete gets no rollingUpdate", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
		}}, func(o runtime.Object) any { return o.(*appsv1.StatefulSet).Spec.UpdateStrategy.RollingUpdate }, (*appsv1.RollingUpdateStatefulSetStrategy)(nil)},
		{"statefulset claim templates", validStatefulSet(), func(o runtime.Object) any {
			c := o.(*appsv1.StatefulSet).Spec.VolumeClaimTemplates[0]
			return []any{c.Spec.VolumeMode, c.Status.Phase}
		}, []any{new(corev1.PersistentVolumeFilesystem), corev1.ClaimPending}},
		{"daemonset", &appsv1.DaemonSet{}, func(o runtime.Object) any {
			s := o.(*appsv1.DaemonSet).Spec
			return []any{s.UpdateStrategy, s.RevisionHistoryLimit, s.Template.Spec.RestartPolicy}
		}, []any{
			appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: new(intstr.FromInt32(1)),
					MaxSurge:       new(intstr.FromInt32(0)),
				},
			},
			new(int32(10)), corev1.RestartPolicyAlways,
		}},
	})
}

func TestDefault_jobs(t *testing.T) {
	bare := func(mutate func(*batchv1.Job)) *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "default"}}
		if mutate != nil {
			mutate(j)
		}
		return j
	}
	runDefaultCases(t, []defaultCase{
		{"completions and parallelism", bare(nil), func(o runtime.Object) any {
			return []*int32{job(o).Spec.Completions, job(o).Spec.Parallelism}
		}, []*int32{new(int32(1)), new(int32(1))}},
		{"work queue keeps completions unset", bare(func(j *batchv1.Job) { j.Spec.Parallelism = new(int32(4)) }), func(o runtime.Object) any {
			return []*int32{job(o).Spec.Completions, job(o).Spec.Parallelism}
		}, []*int32{nil, new(int32(4))}},
		{"fixed completions gets parallelism 1", bare(func(j *batchv1.Job) { j.Spec.Completions = new(int32(5)) }), func(o runtime.Object) any {
			return []*int32{job(o).Spec.Completions, job(o).Spec.Parallelism}
		}, []*int32{new(int32(5)), new(int32(1))}},
		{"backoffLimit", bare(nil), func(o runtime.Object) any { return job(o).Spec.BackoffLimit }, new(int32(6))},
		{"backoffLimit with backoffLimitPerIndex", bare(func(j *batchv1.Job) { j.Spec.BackoffLimitPerIndex = new(int32(1)) }),
			func(o runtime.Object) any { return job(o).Spec.BackoffLimit }, new(int32(math.MaxInt32))},
		{"completionMode", bare(nil), func(o runtime.Object) any { return job(o).Spec.CompletionMode }, new(batchv1.NonIndexedCompletion)},
		{"suspend", bare(nil), func(o runtime.Object) any { return job(o).Spec.Suspend }, new(false)},
		{"manualSelector left unset", bare(nil), func(o runtime.Object) any { return job(o).Spec.ManualSelector }, (*bool)(nil)},
		{"podReplacementPolicy", bare(nil), func(o runtime.Object) any { return job(o).Spec.PodReplacementPolicy }, new(batchv1.TerminatingOrFailed)},
		{"podReplacementPolicy with podFailurePolicy", bare(func(j *batchv1.Job) { j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{} }),
			func(o runtime.Object) any { return job(o).Spec.PodReplacementPolicy }, new(batchv1.Failed)},
		{"template restartPolicy not defaulted", bare(nil), func(o runtime.Object) any { return job(o).Spec.Template.Spec.RestartPolicy }, corev1.RestartPolicy("")},
		{"template pod spec defaulted", validJob(), func(o runtime.Object) any {
			return []any{job(o).Spec.Template.Spec.DNSPolicy, job(o).Spec.Template.Spec.Containers[0].ImagePullPolicy}
		}, []any{corev1.DNSClusterFirst, corev1.PullIfNotPresent}},
		{"labels from template", bare(func(j *batchv1.Job) { j.Spec.Template.Labels = map[string]string{"app": "batch"} }),
			func(o runtime.Object) any { return job(o).Labels["app"] }, "batch"},
		{"selector generated from uid", validJob(), func(o runtime.Object) any {
			j := job(o)
			return []any{j.Spec.Selector, j.Spec.Template.Labels}
		}, []any{
			&metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: "0b1e6c1a-7f7c-4b8e-9a8e-2b6a4b1f7c11"}},
			map[string]string{
				"controller-uid": "0b1e6c1a-7f7c-4b8e-9a8e-2b6a4b1f7c11", batchv1.ControllerUidLabel: "0b1e6c1a-7f7c-4b8e-9a8e-2b6a4b1f7c11",
				"job-name": "migrate", batchv1.JobNameLabel: "migrate",
			},
		}},
		{"no selector without uid", bare(nil), func(o runtime.Object) any { return job(o).Spec.Selector }, (*metav1.LabelSelector)(nil)},
		{"no selector for manual selector", bare(func(j *batchv1.Job) { j.UID = "u"; j.Spec.ManualSelector = new(true) }),
			func(o runtime.Object) any { return job(o).Spec.Selector }, (*metav1.LabelSelector)(nil)},
		{"no selector once stored", bare(func(j *batchv1.Job) { j.UID = "u"; j.ResourceVersion = "7" }),
			func(o runtime.Object) any { return job(o).Spec.Selector }, (*metav1.LabelSelector)(nil)},
		{"cronjob", &batchv1.CronJob{}, func(o runtime.Object) any {
			s := o.(*batchv1.CronJob).Spec
			return []any{s.ConcurrencyPolicy, s.Suspend, s.SuccessfulJobsHistoryLimit, s.FailedJobsHistoryLimit}
		}, []any{batchv1.AllowConcurrent, new(false), new(int32(3)), new(int32(1))}},
		{"cronjob job template", validCronJob(), func(o runtime.Object) any {
			s := o.(*batchv1.CronJob).Spec.JobTemplate.Spec
			return []any{s.BackoffLimit, s.Template.Spec.RestartPolicy, s.Template.Spec.DNSPolicy}
		}, []any{(*int32)(nil), corev1.RestartPolicyOnFailure, corev1.DNSClusterFirst}},
		{"cronjob job template restartPolicy not defaulted", &batchv1.CronJob{}, func(o runtime.Object) any {
			return o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template.Spec.RestartPolicy
		}, corev1.RestartPolicy("")},
	})
}

func TestDefault_service(t *testing.T) {
	typed := func(typ corev1.ServiceType) *corev1.Service {
		s := validService()
		s.Spec.Type = typ
		return s
	}
	runDefaultCases(t, []defaultCase{
		{"type", validService(), func(o runtime.Object) any { return svc(o).Spec.Type }, corev1.ServiceTypeClusterIP},
		{"sessionAffinity", validService(), func(o runtime.Object) any { return svc(o).Spec.SessionAffinity }, corev1.ServiceAffinityNone},
		{"ClientIP affinity timeout", func() *corev1.Service {
			s := validService()
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			return s
		}(), func(o runtime.Object) any { return svc(o).Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds }, new(int32(10800))},
		{"port protocol", validService(), func(o runtime.Object) any { return svc(o).Spec.Ports[0].Protocol }, corev1.ProtocolTCP},
		{"targetPort kept", validService(), func(o runtime.Object) any { return svc(o).Spec.Ports[0].TargetPort }, intstr.FromString("http")},
		{"targetPort from port", func() *corev1.Service {
			s := validService()
			s.Spec.Ports[1].TargetPort = intstr.IntOrString{}
			return s
		}(), func(o runtime.Object) any { return svc(o).Spec.Ports[1].TargetPort }, intstr.FromInt32(443)},
		{"internalTrafficPolicy", validService(), func(o runtime.Object) any { return svc(o).Spec.InternalTrafficPolicy }, new(corev1.ServiceInternalTrafficPolicyCluster)},
		{"no externalTrafficPolicy for ClusterIP", validService(), func(o runtime.Object) any { return svc(o).Spec.ExternalTrafficPolicy }, corev1.ServiceExternalTrafficPolicy("")},
		{"externalTrafficPolicy for NodePort", typed(corev1.ServiceTypeNodePort), func(o runtime.Object) any { return svc(o).Spec.ExternalTrafficPolicy }, corev1.ServiceExternalTrafficPolicyCluster},
		{"externalTrafficPolicy for LoadBalancer", typed(corev1.ServiceTypeLoadBalancer), func(o runtime.Object) any {
			return []any{svc(o).Spec.ExternalTrafficPolicy, svc(o).Spec.AllocateLoadBalancerNodePorts}
		}, []any{corev1.ServiceExternalTrafficPolicyCluster, new(true)}},
		{"ip families", validService(), func(o runtime.Object) any {
			return []any{svc(o).Spec.IPFamilyPolicy, svc(o).Spec.IPFamilies}
		}, []any{new(corev1.IPFamilyPolicySingleStack), []corev1.IPFamily{corev1.IPv4Protocol}}},
		{"no ip families for ExternalName", &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "db.example.com"}},
			func(o runtime.Object) any {
				return []any{svc(o).Spec.IPFamilyPolicy, svc(o).Spec.IPFamilies, svc(o).Spec.InternalTrafficPolicy}
			},
			[]any{(*corev1.IPFamilyPolicy)(nil), []corev1.IPFamily(nil), (*corev1.ServiceInternalTrafficPolicy)(nil)}},
		{"clusterIPs from clusterIP", func() *corev1.Service {
			s := validService()
			s.Spec.ClusterIP = "10.96.0.10"
			return s
		}(), func(o runtime.Object) any { return svc(o).Spec.ClusterIPs }, []string{"10.96.0.10"}},
		{"clusterIP from clusterIPs", func() *corev1.Service {
			s := validService()
			s.Spec.ClusterIPs = []string{"10.96.0.11"}
			return s
		}(), func(o runtime.Object) any { return svc(o).Spec.ClusterIP }, "10.96.0.11"},
		{"endpoints port protocol", validEndpoints(), func(o runtime.Object) any { return o.(*corev1.Endpoints).Subsets[0].Ports[0].Protocol }, corev1.ProtocolTCP},
	})
}

func TestDefault_cluster(t *testing.T) {
	runDefaultCases(t, []defaultCase{
		{"namespace", validNamespace(), func(o runtime.Object) any {
			ns := o.(*corev1.Namespace)
			return []any{ns.Spec.Finalizers, ns.Status.Phase, ns.Labels}
		}, []any{
			[]corev1.FinalizerName{corev1.FinalizerKubernetes}, corev1.NamespaceActive,
			map[string]string{"kubernetes.io/metadata.name": "shop"},
		}},
		{"namespace finalizer not added twice", &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "shop"},
			Spec:       corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"example.com/cleanup", corev1.FinalizerKubernetes}},
		}, func(o runtime.Object) any { return o.(*corev1.Namespace).Spec.Finalizers },
			[]corev1.FinalizerName{"example.com/cleanup", corev1.FinalizerKubernetes}},
		{"stored namespace keeps its finalizers", &corev1.Namespace{
			ObjectMeta: metav1.ObjectMeta{Name: "shop", ResourceVersion: "42"},
			Status:     corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating},
		}, func(o runtime.Object) any { return o.(*corev1.Namespace).Spec.Finalizers }, []corev1.FinalizerName(nil)},
		{"namespace name label overrides", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: "shop", Labels: map[string]string{"kubernetes.io/metadata.name": "other", "team": "a"},
		}}, func(o runtime.Object) any { return o.(*corev1.Namespace).Labels },
			map[string]string{"kubernetes.io/metadata.name": "shop", "team": "a"}},
		{"secret type", &corev1.Secret{}, func(o runtime.Object) any { return o.(*corev1.Secret).Type }, corev1.SecretTypeOpaque},
		{"secret stringData folded into data", &corev1.Secret{
			Data:       map[string][]byte{"user": []byte("old"), "keep": []byte("k")},
			StringData: map[string]string{"user": "admin", "password": "s3cret"},
		}, func(o runtime.Object) any {
			s := o.(*corev1.Secret)
			return []any{s.Data, s.StringData}
		}, []any{
			map[string][]byte{"user": []byte("admin"), "password": []byte("s3cret"), "keep": []byte("k")},
			map[string]string(nil),
		}},
		{"pvc", validPVC(), func(o runtime.Object) any {
			p := o.(*corev1.PersistentVolumeClaim)
			return []any{p.Spec.VolumeMode, p.Status.Phase}
		}, []any{new(corev1.PersistentVolumeFilesystem), corev1.ClaimPending}},
		{"pvc block mode kept", func() *corev1.PersistentVolumeClaim {
			p := validPVC()
			p.Spec.VolumeMode = new(corev1.PersistentVolumeBlock)
			return p
		}(), func(o runtime.Object) any { return o.(*corev1.PersistentVolumeClaim).Spec.VolumeMode }, new(corev1.PersistentVolumeBlock)},
		{"pv", validPV(), func(o runtime.Object) any {
			p := o.(*corev1.PersistentVolume)
			return []any{p.Spec.PersistentVolumeReclaimPolicy, p.Spec.VolumeMode, p.Status.Phase}
		}, []any{corev1.PersistentVolumeReclaimRetain, new(corev1.PersistentVolumeFilesystem), corev1.VolumePending}},
		{"node podCIDRs and allocatable", func() *corev1.Node {
			n := validNode()
			n.Status.Capacity = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}
			return n
		}(), func(o runtime.Object) any {
			n := o.(*corev1.Node)
			return []any{n.Spec.PodCIDRs, n.Status.Allocatable}
		}, []any{[]string{"10.244.1.0/24"}, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}},
		{"rolebinding api groups", validRoleBinding(), func(o runtime.Object) any {
			rb := o.(*rbacv1.RoleBinding)
			return []string{rb.RoleRef.APIGroup, rb.Subjects[0].APIGroup, rb.Subjects[1].APIGroup}
		}, []string{rbacv1.GroupName, rbacv1.GroupName, ""}},
		{"clusterrolebinding roleRef api group", validClusterRoleBinding(), func(o runtime.Object) any {
			return o.(*rbacv1.ClusterRoleBinding).RoleRef.APIGroup
		}, rbacv1.GroupName},
	})
}

func TestDefault_nil(t *testing.T) {
	tests := []struct {
		name string
		obj  runtime.Object
	}{
		{"nil interface", nil},
		{"typed nil pod", (*corev1.Pod)(nil)},
		{"typed nil deployment", (*appsv1.Deployment)(nil)},
		{"unknown type", &metav1.Status{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			Default(tc.obj) // must not panic
		})
	}
}
