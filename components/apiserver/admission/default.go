package admission

import (
	"maps"
	"math"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Workload defaults from pkg/apis/{apps,batch}/v1/defaults.go.
const (
	defaultReplicas                   int32 = 1
	defaultRevisionHistoryLimit       int32 = 10
	defaultProgressDeadlineSeconds    int32 = 600
	defaultDeploymentMaxSurge               = "25%"
	defaultDeploymentMaxUnavailable         = "25%"
	defaultDaemonSetMaxUnavailable          = 1
	defaultDaemonSetMaxSurge                = 0
	defaultJobCompletions             int32 = 1
	defaultJobParallelism             int32 = 1
	defaultJobBackoffLimit            int32 = 6
	defaultSuccessfulJobsHistoryLimit int32 = 3
	defaultFailedJobsHistoryLimit     int32 = 1
)

func defaultReplicationController(rc *corev1.ReplicationController) {
	if rc.Spec.Template != nil {
		defaultPodTemplateSpec(rc.Spec.Template, true)
		if labels := rc.Spec.Template.Labels; labels != nil {
			if len(rc.Spec.Selector) == 0 {
				rc.Spec.Selector = maps.Clone(labels)
			}
			if len(rc.Labels) == 0 {
				rc.Labels = maps.Clone(labels)
			}
		}
	}
	if rc.Spec.Replicas == nil {
		rc.Spec.Replicas = new(defaultReplicas)
	}
}

func defaultDeployment(d *appsv1.Deployment) {
	defaultPodTemplateSpec(&d.Spec.Template, true)
	if d.Spec.Replicas == nil {
		d.Spec.Replicas = new(defaultReplicas)
	}
	s := &d.Spec.Strategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = new(intstr.FromString(defaultDeploymentMaxUnavailable))
		}
		if s.RollingUpdate.MaxSurge == nil {
			s.RollingUpdate.MaxSurge = new(intstr.FromString(defaultDeploymentMaxSurge))
		}
	}
	if d.Spec.RevisionHistoryLimit == nil {
		d.Spec.RevisionHistoryLimit = new(defaultRevisionHistoryLimit)
	}
	if d.Spec.ProgressDeadlineSeconds == nil {
		d.Spec.ProgressDeadlineSeconds = new(defaultProgressDeadlineSeconds)
	}
}

func defaultReplicaSet(rs *appsv1.ReplicaSet) {
	defaultPodTemplateSpec(&rs.Spec.Template, true)
	if rs.Spec.Replicas == nil {
		rs.Spec.Replicas = new(defaultReplicas)
	}
}

func defaultDaemonSet(ds *appsv1.DaemonSet) {
	defaultPodTemplateSpec(&ds.Spec.Template, true)
	s := &ds.Spec.UpdateStrategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if s.RollingUpdate.MaxUnavailable == nil {
			s.RollingUpdate.MaxUnavailable = new(intstr.FromInt32(defaultDaemonSetMaxUnavailable))
		}
		if s.RollingUpdate.MaxSurge == nil {
			s.RollingUpdate.MaxSurge = new(intstr.FromInt32(defaultDaemonSetMaxSurge))
		}
	}
	if ds.Spec.RevisionHistoryLimit == nil {
		ds.Spec.RevisionHistoryLimit = new(defaultRevisionHistoryLimit)
	}
}

func defaultStatefulSet(ss *appsv1.StatefulSet) {
	defaultPodTemplateSpec(&ss.Spec.Template, true)
	for i := range ss.Spec.VolumeClaimTemplates {
		defaultPersistentVolumeClaim(&ss.Spec.VolumeClaimTemplates[i])
	}
	if ss.Spec.PodManagementPolicy == "" {
		ss.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	s := &ss.Spec.UpdateStrategy
	if s.Type == "" {
		s.Type = appsv1.RollingUpdateStatefulSetStrategyType
		if s.RollingUpdate == nil {
			s.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
	}
	if s.Type == appsv1.RollingUpdateStatefulSetStrategyType && s.RollingUpdate != nil && s.RollingUpdate.Partition == nil {
		s.RollingUpdate.Partition = new(int32(0))
	}
	if ss.Spec.PersistentVolumeClaimRetentionPolicy == nil {
		ss.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	p := ss.Spec.PersistentVolumeClaimRetentionPolicy
	if p.WhenDeleted == "" {
		p.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if p.WhenScaled == "" {
		p.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if ss.Spec.Replicas == nil {
		ss.Spec.Replicas = new(defaultReplicas)
	}
	if ss.Spec.RevisionHistoryLimit == nil {
		ss.Spec.RevisionHistoryLimit = new(defaultRevisionHistoryLimit)
	}
}

// defaultJob is SetDefaults_Job, preceded by the selector generation of the
// Job create strategy for a Job that has never been stored (no
// resourceVersion) but already has its uid: the caller assigns the uid
// before defaulting a create. Once stored, the selector and the template
// are immutable, so they are never generated on an update. The pod template's
// restartPolicy is deliberately not defaulted: it must be OnFailure or Never.
// ManualSelector is left unset (newer kube releases default it to false;
// both mean the same).
func defaultJob(job *batchv1.Job) {
	defaultPodTemplateSpec(&job.Spec.Template, false)
	if job.ResourceVersion == "" && job.UID != "" && (job.Spec.ManualSelector == nil || !*job.Spec.ManualSelector) {
		generateJobSelector(job)
	}
	spec := &job.Spec
	// A non-parallel job may leave both unset; a work-queue job sets only
	// parallelism and keeps completions nil.
	if spec.Completions == nil && spec.Parallelism == nil {
		spec.Completions = new(defaultJobCompletions)
		spec.Parallelism = new(defaultJobParallelism)
	}
	if spec.Parallelism == nil {
		spec.Parallelism = new(defaultJobParallelism)
	}
	if spec.BackoffLimit == nil {
		if spec.BackoffLimitPerIndex != nil {
			spec.BackoffLimit = new(int32(math.MaxInt32))
		} else {
			spec.BackoffLimit = new(defaultJobBackoffLimit)
		}
	}
	if labels := spec.Template.Labels; labels != nil && len(job.Labels) == 0 {
		job.Labels = maps.Clone(labels)
	}
	if spec.CompletionMode == nil {
		spec.CompletionMode = new(batchv1.NonIndexedCompletion)
	}
	if spec.Suspend == nil {
		spec.Suspend = new(false)
	}
	if spec.PodFailurePolicy != nil {
		for _, rule := range spec.PodFailurePolicy.Rules {
			for i := range rule.OnPodConditions {
				if rule.OnPodConditions[i].Status == "" {
					rule.OnPodConditions[i].Status = corev1.ConditionTrue
				}
			}
		}
	}
	if spec.PodReplacementPolicy == nil {
		if spec.PodFailurePolicy != nil {
			spec.PodReplacementPolicy = new(batchv1.Failed)
		} else {
			spec.PodReplacementPolicy = new(batchv1.TerminatingOrFailed)
		}
	}
}

// generateJobSelector labels the Job's pods with its name and uid and
// selects them by uid, as the kube Job strategy does on create. Labels the
// user already set are kept; a conflict then fails validation.
func generateJobSelector(job *batchv1.Job) {
	t := &job.Spec.Template
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	for _, key := range []string{"job-name", batchv1.JobNameLabel} {
		if _, ok := t.Labels[key]; !ok {
			t.Labels[key] = job.Name
		}
	}
	for _, key := range []string{"controller-uid", batchv1.ControllerUidLabel} {
		if _, ok := t.Labels[key]; !ok {
			t.Labels[key] = string(job.UID)
		}
	}
	if job.Spec.Selector == nil {
		job.Spec.Selector = &metav1.LabelSelector{}
	}
	if job.Spec.Selector.MatchLabels == nil {
		job.Spec.Selector.MatchLabels = map[string]string{}
	}
	if _, ok := job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel]; !ok {
		job.Spec.Selector.MatchLabels[batchv1.ControllerUidLabel] = string(job.UID)
	}
}

// defaultCronJob is SetDefaults_CronJob. As in kube, the job template's
// JobSpec is not defaulted (the CronJob controller's Job gets defaulted when
// it is created); only its pod template is.
func defaultCronJob(cj *batchv1.CronJob) {
	defaultPodTemplateSpec(&cj.Spec.JobTemplate.Spec.Template, false)
	if cj.Spec.ConcurrencyPolicy == "" {
		cj.Spec.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if cj.Spec.Suspend == nil {
		cj.Spec.Suspend = new(false)
	}
	if cj.Spec.SuccessfulJobsHistoryLimit == nil {
		cj.Spec.SuccessfulJobsHistoryLimit = new(defaultSuccessfulJobsHistoryLimit)
	}
	if cj.Spec.FailedJobsHistoryLimit == nil {
		cj.Spec.FailedJobsHistoryLimit = new(defaultFailedJobsHistoryLimit)
	}
}

func defaultService(svc *corev1.Service) {
	spec := &svc.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	switch spec.SessionAffinity {
	case corev1.ServiceAffinityNone:
		spec.SessionAffinityConfig = nil
	case corev1.ServiceAffinityClientIP:
		if c := spec.SessionAffinityConfig; c == nil || c.ClientIP == nil || c.ClientIP.TimeoutSeconds == nil {
			spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
				ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: new(corev1.DefaultClientIPServiceAffinitySeconds)},
			}
		}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if externallyAccessible(svc) && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.InternalTrafficPolicy == nil {
		switch spec.Type {
		case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
			spec.InternalTrafficPolicy = new(corev1.ServiceInternalTrafficPolicyCluster)
		}
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		spec.AllocateLoadBalancerNodePorts = new(true)
	}
	if spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	// The create strategy keeps clusterIP and clusterIPs[0] in step whichever
	// one the client set.
	if spec.ClusterIP != "" && len(spec.ClusterIPs) == 0 {
		spec.ClusterIPs = []string{spec.ClusterIP}
	}
	if spec.ClusterIP == "" && len(spec.ClusterIPs) > 0 {
		spec.ClusterIP = spec.ClusterIPs[0]
	}
	// kiln's allocator is single-stack IPv4, so these are what kube's
	// allocator would write on such a cluster.
	if spec.IPFamilyPolicy == nil {
		spec.IPFamilyPolicy = new(corev1.IPFamilyPolicySingleStack)
	}
	if len(spec.IPFamilies) == 0 {
		spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
	}
}

// externallyAccessible reports whether traffic can reach the service from
// outside the cluster, which is when externalTrafficPolicy applies.
func externallyAccessible(svc *corev1.Service) bool {
	switch svc.Spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		return true
	case corev1.ServiceTypeClusterIP:
		return len(svc.Spec.ExternalIPs) > 0
	}
	return false
}

func defaultEndpoints(ep *corev1.Endpoints) {
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			if p := &ep.Subsets[i].Ports[j]; p.Protocol == "" {
				p.Protocol = corev1.ProtocolTCP
			}
		}
	}
}

// defaultNamespace sets the kubernetes.io/metadata.name label and the
// status phase. It also adds the "kubernetes" finalizer, which kube adds in
// its create strategy only: the namespace controller removes it while the
// namespace terminates, and re-adding it on a later update would block the
// deletion. A namespace without a resourceVersion and without a status
// phase has never been stored, so that is when it is added.
func defaultNamespace(ns *corev1.Namespace) {
	if ns.Name != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	if ns.ResourceVersion == "" && ns.Status.Phase == "" {
		hasKube := false
		for _, f := range ns.Spec.Finalizers {
			hasKube = hasKube || f == corev1.FinalizerKubernetes
		}
		if !hasKube {
			ns.Spec.Finalizers = append(ns.Spec.Finalizers, corev1.FinalizerKubernetes)
		}
	}
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

func defaultNode(node *corev1.Node) {
	spec := &node.Spec
	if spec.PodCIDR != "" && len(spec.PodCIDRs) == 0 {
		spec.PodCIDRs = []string{spec.PodCIDR}
	}
	if spec.PodCIDR == "" && len(spec.PodCIDRs) > 0 {
		spec.PodCIDR = spec.PodCIDRs[0]
	}
	st := &node.Status
	if st.Allocatable == nil && st.Capacity != nil {
		st.Allocatable = st.Capacity.DeepCopy()
	}
	roundResourceList(st.Capacity)
	roundResourceList(st.Allocatable)
}

// defaultSecret sets the type and folds the write-only stringData into
// data, where stringData wins, as v1 conversion does in kube.
func defaultSecret(s *corev1.Secret) {
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = make(map[string][]byte, len(s.StringData))
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
	}
	s.StringData = nil
}

func defaultPersistentVolumeClaim(pvc *corev1.PersistentVolumeClaim) {
	defaultPersistentVolumeClaimSpec(&pvc.Spec)
	if pvc.Status.Phase == "" {
		pvc.Status.Phase = corev1.ClaimPending
	}
}

func defaultPersistentVolumeClaimSpec(spec *corev1.PersistentVolumeClaimSpec) {
	if spec.VolumeMode == nil {
		spec.VolumeMode = new(corev1.PersistentVolumeFilesystem)
	}
	roundResourceList(spec.Resources.Requests)
	roundResourceList(spec.Resources.Limits)
}

func defaultPersistentVolume(pv *corev1.PersistentVolume) {
	if pv.Status.Phase == "" {
		pv.Status.Phase = corev1.VolumePending
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		pv.Spec.VolumeMode = new(corev1.PersistentVolumeFilesystem)
	}
	roundResourceList(pv.Spec.Capacity)
}

func defaultRoleRef(ref *rbacv1.RoleRef) {
	if ref.APIGroup == "" {
		ref.APIGroup = rbacv1.GroupName
	}
}

// defaultSubjects gives User and Group subjects the RBAC API group; a
// ServiceAccount subject stays in the core group.
func defaultSubjects(subjects []rbacv1.Subject) {
	for i := range subjects {
		s := &subjects[i]
		if s.APIGroup == "" && (s.Kind == rbacv1.UserKind || s.Kind == rbacv1.GroupKind) {
			s.APIGroup = rbacv1.GroupName
		}
	}
}
