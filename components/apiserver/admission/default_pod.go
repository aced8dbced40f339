package admission

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Values that kube-apiserver's v1 defaulters write.
const (
	defaultTerminationGracePeriodSeconds int64 = corev1.DefaultTerminationGracePeriodSeconds
	defaultProbeTimeoutSeconds           int32 = 1
	defaultProbePeriodSeconds            int32 = 10
	defaultProbeSuccessThreshold         int32 = 1
	defaultProbeFailureThreshold         int32 = 3
	defaultFieldRefAPIVersion                  = "v1"
	defaultTokenExpirationSeconds        int64 = 3600
	// milliScale is the precision kube rounds resource quantities up to.
	milliScale = -3
)

// defaultPod applies the PodSpec defaults plus the ones kube applies to Pods
// only (SetDefaults_Pod), not to pod templates: requests copied from limits,
// enableServiceLinks, and hostPort for hostNetwork pods.
func defaultPod(pod *corev1.Pod) {
	defaultPodSpec(&pod.Spec, true)
	for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range containers {
			defaultRequestsFromLimits(&containers[i].Resources)
		}
	}
	if pod.Spec.EnableServiceLinks == nil {
		pod.Spec.EnableServiceLinks = new(corev1.DefaultEnableServiceLinks)
	}
	if pod.Spec.HostNetwork {
		for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
			for i := range containers {
				for j := range containers[i].Ports {
					if p := &containers[i].Ports[j]; p.HostPort == 0 {
						p.HostPort = p.ContainerPort
					}
				}
			}
		}
	}
}

// defaultRequestsFromLimits copies each limit without a request into
// requests, so a pod that only sets limits is scheduled on them.
func defaultRequestsFromLimits(r *corev1.ResourceRequirements) {
	if r.Limits == nil {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	for name, q := range r.Limits {
		if _, ok := r.Requests[name]; !ok {
			r.Requests[name] = q.DeepCopy()
		}
	}
}

// defaultPodTemplateSpec defaults the pod spec of a template.
// defaultRestartPolicy is false for Job and CronJob templates, where
// restartPolicy must be chosen explicitly (OnFailure or Never).
func defaultPodTemplateSpec(t *corev1.PodTemplateSpec, defaultRestartPolicy bool) {
	defaultPodSpec(&t.Spec, defaultRestartPolicy)
}

// defaultPodSpec is SetDefaults_PodSpec plus the defaults of every type
// nested in a PodSpec (containers, probes, volumes, ...).
func defaultPodSpec(spec *corev1.PodSpec, defaultRestartPolicy bool) {
	if spec.DNSPolicy == "" {
		spec.DNSPolicy = corev1.DNSClusterFirst
	}
	if spec.RestartPolicy == "" && defaultRestartPolicy {
		spec.RestartPolicy = corev1.RestartPolicyAlways
	}
	if spec.SecurityContext == nil {
		spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if spec.TerminationGracePeriodSeconds == nil {
		spec.TerminationGracePeriodSeconds = new(defaultTerminationGracePeriodSeconds)
	}
	if spec.SchedulerName == "" {
		spec.SchedulerName = corev1.DefaultSchedulerName
	}
	for i := range spec.Volumes {
		defaultVolume(&spec.Volumes[i])
	}
	for i := range spec.InitContainers {
		defaultContainer(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		defaultContainer(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		defaultContainer((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
	roundResourceList(spec.Overhead)
	if spec.Resources != nil {
		roundResourceList(spec.Resources.Limits)
		roundResourceList(spec.Resources.Requests)
	}
}

// defaultContainer is SetDefaults_Container plus the nested defaults of
// ports, env, probes, lifecycle handlers and resources.
func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = defaultPullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil && vf.FieldRef != nil {
			defaultObjectFieldSelector(vf.FieldRef)
		}
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		defaultProbe(p)
	}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil {
				defaultHTTPGetAction(h.HTTPGet)
			}
		}
	}
	roundResourceList(c.Resources.Limits)
	roundResourceList(c.Resources.Requests)
}

// defaultPullPolicy is Always for the "latest" tag (explicit or implied by
// a reference with neither tag nor digest) and IfNotPresent otherwise, as
// SetDefaults_Container decides from parsers.ParseImageName.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if image == "" {
		return corev1.PullIfNotPresent
	}
	name, digested := image, false
	if i := strings.Index(image, "@"); i >= 0 {
		name, digested = image[:i], true
	}
	tag := ""
	// A colon before the last slash belongs to a registry host:port.
	if c := strings.LastIndex(name, ":"); c > strings.LastIndex(name, "/") {
		tag = name[c+1:]
	}
	if tag == "" && !digested {
		tag = "latest"
	}
	if tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// defaultProbe is SetDefaults_Probe plus the defaults of its handler.
func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = defaultProbeTimeoutSeconds
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = defaultProbePeriodSeconds
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = defaultProbeSuccessThreshold
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = defaultProbeFailureThreshold
	}
	defaultHTTPGetAction(p.HTTPGet)
	if p.GRPC != nil && p.GRPC.Service == nil {
		// GRPCAction.service is declared +default="".
		p.GRPC.Service = new("")
	}
}

func defaultHTTPGetAction(a *corev1.HTTPGetAction) {
	if a == nil {
		return
	}
	if a.Path == "" {
		a.Path = "/"
	}
	if a.Scheme == "" {
		a.Scheme = corev1.URISchemeHTTP
	}
}

func defaultObjectFieldSelector(s *corev1.ObjectFieldSelector) {
	if s.APIVersion == "" {
		s.APIVersion = defaultFieldRefAPIVersion
	}
}

// defaultVolume is SetDefaults_Volume plus the defaults of its source: a
// volume without a source is an emptyDir, and projected files get mode 0644.
func defaultVolume(v *corev1.Volume) {
	src := &v.VolumeSource
	if volumeSourceCount(src) == 0 {
		src.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	if s := src.Secret; s != nil && s.DefaultMode == nil {
		s.DefaultMode = new(corev1.SecretVolumeSourceDefaultMode)
	}
	if s := src.ConfigMap; s != nil && s.DefaultMode == nil {
		s.DefaultMode = new(corev1.ConfigMapVolumeSourceDefaultMode)
	}
	if s := src.DownwardAPI; s != nil {
		if s.DefaultMode == nil {
			s.DefaultMode = new(corev1.DownwardAPIVolumeSourceDefaultMode)
		}
		defaultDownwardAPIFiles(s.Items)
	}
	if s := src.Projected; s != nil {
		if s.DefaultMode == nil {
			s.DefaultMode = new(corev1.ProjectedVolumeSourceDefaultMode)
		}
		for i := range s.Sources {
			if d := s.Sources[i].DownwardAPI; d != nil {
				defaultDownwardAPIFiles(d.Items)
			}
			if t := s.Sources[i].ServiceAccountToken; t != nil && t.ExpirationSeconds == nil {
				t.ExpirationSeconds = new(defaultTokenExpirationSeconds)
			}
		}
	}
	if s := src.HostPath; s != nil && s.Type == nil {
		s.Type = new(corev1.HostPathUnset)
	}
	if s := src.Image; s != nil && s.PullPolicy == "" {
		s.PullPolicy = defaultPullPolicy(s.Reference)
	}
	if s := src.Ephemeral; s != nil && s.VolumeClaimTemplate != nil {
		defaultPersistentVolumeClaimSpec(&s.VolumeClaimTemplate.Spec)
	}
}

func defaultDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile) {
	for i := range items {
		if items[i].FieldRef != nil {
			defaultObjectFieldSelector(items[i].FieldRef)
		}
	}
}

// roundResourceList rounds every quantity up to milli precision, as
// SetDefaults_ResourceList does, so that "0.0001" CPU becomes "1m".
func roundResourceList(rl corev1.ResourceList) {
	for name, q := range rl {
		q.RoundUp(milliScale)
		rl[name] = q
	}
}
