package admission

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Limits from pkg/apis/core/validation.
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
)

var (
	supportedRestartPolicies  = []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
	supportedDNSPolicies      = []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}
	supportedPullPolicies     = []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}
	supportedPortProtocols    = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}
	supportedTermMsgPolicies  = []corev1.TerminationMessagePolicy{corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError}
	supportedHTTPSchemes      = []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}
	supportedCtrRestartPolicy = []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways, corev1.ContainerRestartPolicyOnFailure, corev1.ContainerRestartPolicyNever}
	supportedTolerationOps    = []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}
	supportedTaintEffects     = []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}
	supportedMountPropagation = []corev1.MountPropagationMode{corev1.MountPropagationNone, corev1.MountPropagationHostToContainer, corev1.MountPropagationBidirectional}
)

// updatablePodSpecFields is the list kube prints when a pod update touches
// anything else.
var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds`",
}

// podOpts says where a PodSpec sits, since Pods are held to a few rules
// that templates are not.
type podOpts struct {
	// isPod is true for a Pod and false for a pod template.
	isPod bool
	// extraVolumes are names that volumeMounts may refer to besides
	// spec.volumes: a StatefulSet's volumeClaimTemplates.
	extraVolumes []string
}

func validatePod(pod *corev1.Pod, namespaced, create bool) field.ErrorList {
	allErrs := validateObjectMeta(&pod.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	allErrs = append(allErrs, validatePodSpec(&pod.Spec, specPath, podOpts{isPod: true})...)
	if create && len(pod.Spec.EphemeralContainers) > 0 {
		allErrs = append(allErrs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	return allErrs
}

// validatePodTemplateSpec checks a template at fldPath (for example
// "spec.template"): its labels and annotations and its pod spec.
func validatePodTemplateSpec(t *corev1.PodTemplateSpec, fldPath *field.Path, opts podOpts) field.ErrorList {
	metaPath := fldPath.Child("metadata")
	allErrs := validateLabels(t.Labels, metaPath.Child("labels"))
	allErrs = append(allErrs, validateAnnotations(t.Annotations, metaPath.Child("annotations"))...)
	allErrs = append(allErrs, validatePodSpec(&t.Spec, fldPath.Child("spec"), opts)...)
	if len(t.Spec.EphemeralContainers) > 0 {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	return allErrs
}

func validatePodSpec(spec *corev1.PodSpec, fldPath *field.Path, opts podOpts) field.ErrorList {
	vols, allErrs := validateVolumes(spec.Volumes, fldPath.Child("volumes"))
	for _, name := range opts.extraVolumes {
		vols[name] = true
	}
	allErrs = append(allErrs, validatePodContainers(spec, vols, fldPath, opts)...)

	switch p := spec.RestartPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("restartPolicy"), ""))
	case !slices.Contains(supportedRestartPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("restartPolicy"), p, supportedRestartPolicies))
	}
	switch p := spec.DNSPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("dnsPolicy"), ""))
	case !slices.Contains(supportedDNSPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("dnsPolicy"), p, supportedDNSPolicies))
	}
	allErrs = append(allErrs, validateDNSConfig(spec.DNSConfig, spec.DNSPolicy, fldPath.Child("dnsConfig"))...)
	allErrs = append(allErrs, validateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))...)
	if spec.ServiceAccountName != "" {
		allErrs = append(allErrs, validateMessages(fldPath.Child("serviceAccountName"), spec.ServiceAccountName, apimachineryvalidation.ValidateServiceAccountName(spec.ServiceAccountName, false))...)
	}
	if spec.NodeName != "" {
		allErrs = append(allErrs, validateDNS1123Subdomain(spec.NodeName, fldPath.Child("nodeName"))...)
	}
	if spec.ActiveDeadlineSeconds != nil {
		if v := *spec.ActiveDeadlineSeconds; v < 1 || v > math.MaxInt32 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), v, utilvalidation.InclusiveRangeError(1, math.MaxInt32)))
		}
	}
	if spec.Hostname != "" {
		allErrs = append(allErrs, validateDNS1123Label(spec.Hostname, fldPath.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		allErrs = append(allErrs, validateDNS1123Label(spec.Subdomain, fldPath.Child("subdomain"))...)
	}
	if spec.SchedulerName != "" {
		allErrs = append(allErrs, validateDNS1123Subdomain(spec.SchedulerName, fldPath.Child("schedulerName"))...)
	}
	if spec.PriorityClassName != "" {
		allErrs = append(allErrs, validateDNS1123Subdomain(spec.PriorityClassName, fldPath.Child("priorityClassName"))...)
	}
	allErrs = append(allErrs, validateTolerations(spec.Tolerations, fldPath.Child("tolerations"))...)
	return allErrs
}

// validatePodContainers checks the three container lists together, since
// names and host ports must be unique across all of them.
func validatePodContainers(spec *corev1.PodSpec, vols map[string]bool, fldPath *field.Path, opts podOpts) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	checkName := func(name string, idxPath *field.Path) {
		if name == "" {
			return
		}
		if names[name] {
			allErrs = append(allErrs, field.Duplicate(idxPath.Child("name"), name))
		}
		names[name] = true
	}

	ctrsPath := fldPath.Child("containers")
	if len(spec.Containers) == 0 {
		allErrs = append(allErrs, field.Required(ctrsPath, ""))
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		idxPath := ctrsPath.Index(i)
		allErrs = append(allErrs, validateContainer(c, vols, idxPath, opts)...)
		checkName(c.Name, idxPath)
		allErrs = append(allErrs, validateContainerProbesAndLifecycle(c, spec.TerminationGracePeriodSeconds, idxPath)...)
		if c.RestartPolicy != nil && !slices.Contains(supportedCtrRestartPolicy, *c.RestartPolicy) {
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("restartPolicy"), *c.RestartPolicy, supportedCtrRestartPolicy))
		}
	}

	initPath := fldPath.Child("initContainers")
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		idxPath := initPath.Index(i)
		allErrs = append(allErrs, validateContainer(c, vols, idxPath, opts)...)
		checkName(c.Name, idxPath)
		sidecar := false
		if c.RestartPolicy != nil {
			if *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				sidecar = true
			} else {
				allErrs = append(allErrs, field.NotSupported(idxPath.Child("restartPolicy"), *c.RestartPolicy, []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
			}
		}
		// Only sidecars (restartable init containers) keep running long
		// enough to be probed or to have lifecycle hooks.
		if sidecar {
			allErrs = append(allErrs, validateContainerProbesAndLifecycle(c, spec.TerminationGracePeriodSeconds, idxPath)...)
			continue
		}
		const msg = "may not be set for init containers without restartPolicy=Always"
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"lifecycle", c.Lifecycle != nil},
			{"livenessProbe", c.LivenessProbe != nil},
			{"readinessProbe", c.ReadinessProbe != nil},
			{"startupProbe", c.StartupProbe != nil},
		} {
			if f.set {
				allErrs = append(allErrs, field.Forbidden(idxPath.Child(f.name), msg))
			}
		}
	}

	ephPath := fldPath.Child("ephemeralContainers")
	for i := range spec.EphemeralContainers {
		ec := &spec.EphemeralContainers[i]
		c := (*corev1.Container)(&ec.EphemeralContainerCommon)
		idxPath := ephPath.Index(i)
		allErrs = append(allErrs, validateContainer(c, vols, idxPath, podOpts{isPod: true})...)
		checkName(c.Name, idxPath)
		// Ephemeral containers are for debugging: nothing may rely on them.
		const msg = "cannot be set for an Ephemeral Container"
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"ports", len(c.Ports) > 0},
			{"resources", !apiequality.Semantic.DeepEqual(c.Resources, corev1.ResourceRequirements{})},
			{"lifecycle", c.Lifecycle != nil},
			{"livenessProbe", c.LivenessProbe != nil},
			{"readinessProbe", c.ReadinessProbe != nil},
			{"startupProbe", c.StartupProbe != nil},
		} {
			if f.set {
				allErrs = append(allErrs, field.Forbidden(idxPath.Child(f.name), msg))
			}
		}
	}

	allErrs = append(allErrs, validateHostPorts(spec, fldPath, opts)...)
	return allErrs
}

// validateHostPorts checks that no two containers claim the same host port
// and, for hostNetwork pods, that each port is exposed on the host as is.
func validateHostPorts(spec *corev1.PodSpec, fldPath *field.Path, opts podOpts) field.ErrorList {
	var allErrs field.ErrorList
	seen := map[string]bool{}
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i, c := range list.containers {
			for j, p := range c.Ports {
				portPath := fldPath.Child(list.name).Index(i).Child("ports").Index(j)
				// A pod template's hostPort is left unset, to be defaulted
				// on the pods made from it.
				if spec.HostNetwork && p.HostPort != p.ContainerPort && (opts.isPod || p.HostPort != 0) {
					allErrs = append(allErrs, field.Invalid(portPath.Child("containerPort"), p.ContainerPort, "must match `hostPort` when `hostNetwork` is true"))
				}
				if p.HostPort == 0 {
					continue
				}
				key := fmt.Sprintf("%s/%s/%d", p.HostIP, p.Protocol, p.HostPort)
				if seen[key] {
					allErrs = append(allErrs, field.Duplicate(portPath.Child("hostPort"), fmt.Sprintf("%s/%d", p.Protocol, p.HostPort)))
				}
				seen[key] = true
			}
		}
	}
	return allErrs
}

// validateContainer holds the checks common to every kind of container.
func validateContainer(c *corev1.Container, vols map[string]bool, fldPath *field.Path, opts podOpts) field.ErrorList {
	var allErrs field.ErrorList
	if c.Name == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("name"), ""))
	} else {
		allErrs = append(allErrs, validateDNS1123Label(c.Name, fldPath.Child("name"))...)
	}
	if c.Image == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("image"), ""))
	} else if opts.isPod && strings.TrimSpace(c.Image) != c.Image {
		// Templates may carry a " " placeholder that tooling fills in.
		allErrs = append(allErrs, field.Invalid(fldPath.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	switch p := c.TerminationMessagePolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("terminationMessagePolicy"), ""))
	case !slices.Contains(supportedTermMsgPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("terminationMessagePolicy"), p, supportedTermMsgPolicies))
	}
	switch p := c.ImagePullPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("imagePullPolicy"), ""))
	case !slices.Contains(supportedPullPolicies, p):
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("imagePullPolicy"), p, supportedPullPolicies))
	}
	allErrs = append(allErrs, validateContainerPorts(c.Ports, fldPath.Child("ports"))...)
	allErrs = append(allErrs, validateEnv(c.Env, fldPath.Child("env"))...)
	allErrs = append(allErrs, validateEnvFrom(c.EnvFrom, fldPath.Child("envFrom"))...)
	allErrs = append(allErrs, validateVolumeMounts(c.VolumeMounts, vols, fldPath.Child("volumeMounts"))...)
	allErrs = append(allErrs, validateResources(&c.Resources, fldPath.Child("resources"))...)
	return allErrs
}

func validateContainerPorts(ports []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	names := map[string]bool{}
	for i, p := range ports {
		idxPath := fldPath.Index(i)
		if p.Name != "" {
			if msgs := utilvalidation.IsValidPortName(p.Name); len(msgs) > 0 {
				allErrs = append(allErrs, validateMessages(idxPath.Child("name"), p.Name, msgs)...)
			} else if names[p.Name] {
				allErrs = append(allErrs, field.Duplicate(idxPath.Child("name"), p.Name))
			}
			names[p.Name] = true
		}
		if p.ContainerPort == 0 {
			allErrs = append(allErrs, field.Required(idxPath.Child("containerPort"), ""))
		} else {
			allErrs = append(allErrs, validateMessages(idxPath.Child("containerPort"), p.ContainerPort, utilvalidation.IsValidPortNum(int(p.ContainerPort)))...)
		}
		if p.HostPort != 0 {
			allErrs = append(allErrs, validateMessages(idxPath.Child("hostPort"), p.HostPort, utilvalidation.IsValidPortNum(int(p.HostPort)))...)
		}
		allErrs = append(allErrs, validateProtocol(p.Protocol, idxPath.Child("protocol"))...)
	}
	return allErrs
}

func validateProtocol(p corev1.Protocol, fldPath *field.Path) field.ErrorList {
	switch {
	case p == "":
		return field.ErrorList{field.Required(fldPath, "")}
	case !slices.Contains(supportedPortProtocols, p):
		return field.ErrorList{field.NotSupported(fldPath, p, supportedPortProtocols)}
	}
	return nil
}

// validateContainerProbesAndLifecycle checks the probes and hooks of a
// container that runs for the life of the pod.
func validateContainerProbesAndLifecycle(c *corev1.Container, gracePeriod *int64, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, validateProbe(c.LivenessProbe, fldPath.Child("livenessProbe"))...)
	allErrs = append(allErrs, validateProbe(c.ReadinessProbe, fldPath.Child("readinessProbe"))...)
	allErrs = append(allErrs, validateProbe(c.StartupProbe, fldPath.Child("startupProbe"))...)
	// A liveness or startup probe passes on its first success.
	if p := c.LivenessProbe; p != nil && p.SuccessThreshold != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("livenessProbe", "successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	if p := c.StartupProbe; p != nil && p.SuccessThreshold != 1 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("startupProbe", "successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	if l := c.Lifecycle; l != nil {
		lPath := fldPath.Child("lifecycle")
		for _, h := range []struct {
			name    string
			handler *corev1.LifecycleHandler
		}{{"postStart", l.PostStart}, {"preStop", l.PreStop}} {
			if h.handler == nil {
				continue
			}
			allErrs = append(allErrs, validateHandler(handler{
				exec: h.handler.Exec, httpGet: h.handler.HTTPGet, tcpSocket: h.handler.TCPSocket, sleep: h.handler.Sleep,
			}, gracePeriod, lPath.Child(h.name))...)
		}
	}
	return allErrs
}

func validateProbe(p *corev1.Probe, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	allErrs := validateHandler(handler{
		exec: p.Exec, httpGet: p.HTTPGet, tcpSocket: p.TCPSocket, grpc: p.GRPC,
	}, nil, fldPath)
	for _, f := range []struct {
		name  string
		value int32
	}{
		{"initialDelaySeconds", p.InitialDelaySeconds},
		{"timeoutSeconds", p.TimeoutSeconds},
		{"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold},
		{"failureThreshold", p.FailureThreshold},
	} {
		allErrs = append(allErrs, validateNonnegative(int64(f.value), fldPath.Child(f.name))...)
	}
	if g := p.TerminationGracePeriodSeconds; g != nil && *g <= 0 {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("terminationGracePeriodSeconds"), *g, "must be greater than 0"))
	}
	return allErrs
}

// handler is the union shared by probes and lifecycle hooks, of which
// exactly one member must be set.
type handler struct {
	exec      *corev1.ExecAction
	httpGet   *corev1.HTTPGetAction
	tcpSocket *corev1.TCPSocketAction
	grpc      *corev1.GRPCAction
	sleep     *corev1.SleepAction
}

func validateHandler(h handler, gracePeriod *int64, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	n := 0
	one := func(set bool, name string, check func(*field.Path) field.ErrorList) {
		if !set {
			return
		}
		if n > 0 {
			allErrs = append(allErrs, field.Forbidden(fldPath.Child(name), msgMultipleHandlers))
			return
		}
		n++
		allErrs = append(allErrs, check(fldPath.Child(name))...)
	}
	one(h.exec != nil, "exec", func(p *field.Path) field.ErrorList {
		if len(h.exec.Command) == 0 {
			return field.ErrorList{field.Required(p.Child("command"), "")}
		}
		return nil
	})
	one(h.httpGet != nil, "httpGet", func(p *field.Path) field.ErrorList {
		var errs field.ErrorList
		if h.httpGet.Path == "" {
			errs = append(errs, field.Required(p.Child("path"), ""))
		}
		errs = append(errs, validatePortNumOrName(h.httpGet.Port, p.Child("port"))...)
		if !slices.Contains(supportedHTTPSchemes, h.httpGet.Scheme) {
			errs = append(errs, field.NotSupported(p.Child("scheme"), h.httpGet.Scheme, supportedHTTPSchemes))
		}
		for _, hdr := range h.httpGet.HTTPHeaders {
			errs = append(errs, validateMessages(p.Child("httpHeaders"), hdr.Name, utilvalidation.IsHTTPHeaderName(hdr.Name))...)
		}
		return errs
	})
	one(h.tcpSocket != nil, "tcpSocket", func(p *field.Path) field.ErrorList {
		return validatePortNumOrName(h.tcpSocket.Port, p.Child("port"))
	})
	one(h.grpc != nil, "grpc", func(p *field.Path) field.ErrorList {
		return validateMessages(p.Child("port"), h.grpc.Port, utilvalidation.IsValidPortNum(int(h.grpc.Port)))
	})
	one(h.sleep != nil, "sleep", func(p *field.Path) field.ErrorList {
		if s := h.sleep.Seconds; s < 0 || (gracePeriod != nil && s > *gracePeriod) {
			limit := "terminationGracePeriodSeconds"
			if gracePeriod != nil {
				limit = fmt.Sprintf("terminationGracePeriodSeconds (%d)", *gracePeriod)
			}
			return field.ErrorList{field.Invalid(p, s, "must be non-negative and less than "+limit)}
		}
		return nil
	})
	if n == 0 {
		allErrs = append(allErrs, field.Required(fldPath, "must specify a handler type"))
	}
	return allErrs
}

// Downward API field paths, by where they are used.
var (
	envFieldPaths = []string{
		"metadata.name", "metadata.namespace", "metadata.uid",
		"spec.nodeName", "spec.serviceAccountName",
		"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
	}
	volumeFieldPaths = []string{
		"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
	}
	resourceFieldPaths = []string{
		"limits.cpu", "limits.ephemeral-storage", "limits.memory",
		"requests.cpu", "requests.ephemeral-storage", "requests.memory",
	}
)

func validateEnv(vars []corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, ev := range vars {
		idxPath := fldPath.Index(i)
		if ev.Name == "" {
			allErrs = append(allErrs, field.Required(idxPath.Child("name"), ""))
		} else {
			allErrs = append(allErrs, validateMessages(idxPath.Child("name"), ev.Name, utilvalidation.IsRelaxedEnvVarName(ev.Name))...)
		}
		allErrs = append(allErrs, validateEnvVarSource(ev, idxPath.Child("valueFrom"))...)
	}
	return allErrs
}

func validateEnvVarSource(ev corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	vf := ev.ValueFrom
	if vf == nil {
		return nil
	}
	var allErrs field.ErrorList
	n := 0
	if vf.FieldRef != nil {
		n++
		allErrs = append(allErrs, validateObjectFieldSelector(vf.FieldRef, envFieldPaths, fldPath.Child("fieldRef"))...)
	}
	if vf.ResourceFieldRef != nil {
		n++
		allErrs = append(allErrs, validateResourceFieldSelector(vf.ResourceFieldRef, false, fldPath.Child("resourceFieldRef"))...)
	}
	if vf.ConfigMapKeyRef != nil {
		n++
		allErrs = append(allErrs, validateKeySelector(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, fldPath.Child("configMapKeyRef"))...)
	}
	if vf.SecretKeyRef != nil {
		n++
		allErrs = append(allErrs, validateKeySelector(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, fldPath.Child("secretKeyRef"))...)
	}
	if vf.FileKeyRef != nil {
		n++
		p := fldPath.Child("fileKeyRef")
		if vf.FileKeyRef.VolumeName == "" {
			allErrs = append(allErrs, field.Required(p.Child("volumeName"), ""))
		}
		if vf.FileKeyRef.Path == "" {
			allErrs = append(allErrs, field.Required(p.Child("path"), ""))
		}
		if vf.FileKeyRef.Key == "" {
			allErrs = append(allErrs, field.Required(p.Child("key"), ""))
		}
	}
	switch {
	case n == 0:
		allErrs = append(allErrs, field.Invalid(fldPath, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef` or `fileKeyRef`"))
	case ev.Value != "":
		allErrs = append(allErrs, field.Invalid(fldPath, "", "may not be specified when `value` is not empty"))
	case n > 1:
		allErrs = append(allErrs, field.Invalid(fldPath, "", "may not have more than one field specified at a time"))
	}
	return allErrs
}

// validateKeySelector checks a configMapKeyRef or secretKeyRef.
func validateKeySelector(name, key string, fldPath *field.Path) field.ErrorList {
	allErrs := validateMessages(fldPath.Child("name"), name, apimachineryvalidation.NameIsDNSSubdomain(name, false))
	if key == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("key"), ""))
	} else {
		allErrs = append(allErrs, validateMessages(fldPath.Child("key"), key, utilvalidation.IsConfigMapKey(key))...)
	}
	return allErrs
}

// validateObjectFieldSelector checks a downward API fieldRef against the
// paths supported where it is used; metadata.labels['k'] and
// metadata.annotations['k'] select a single entry.
func validateObjectFieldSelector(fs *corev1.ObjectFieldSelector, paths []string, fldPath *field.Path) field.ErrorList {
	if fs.APIVersion == "" {
		return field.ErrorList{field.Required(fldPath.Child("apiVersion"), "")}
	}
	if fs.FieldPath == "" {
		return field.ErrorList{field.Required(fldPath.Child("fieldPath"), "")}
	}
	if fs.APIVersion != "v1" {
		return field.ErrorList{field.Invalid(fldPath.Child("fieldPath"), fs.FieldPath, "error converting fieldPath: unsupported pod version: "+fs.APIVersion)}
	}
	if path, subscript, ok := splitSubscriptedPath(fs.FieldPath); ok {
		switch path {
		case "metadata.annotations":
			return metav1validation.ValidateLabelName(strings.ToLower(subscript), fldPath)
		case "metadata.labels":
			return metav1validation.ValidateLabelName(subscript, fldPath)
		}
		return field.ErrorList{field.Invalid(fldPath, path, "does not support subscript")}
	}
	if !slices.Contains(paths, fs.FieldPath) {
		return field.ErrorList{field.NotSupported(fldPath.Child("fieldPath"), fs.FieldPath, paths)}
	}
	return nil
}

// splitSubscriptedPath splits "metadata.labels['key']" into its path and
// subscript.
func splitSubscriptedPath(fieldPath string) (path, subscript string, ok bool) {
	if !strings.HasSuffix(fieldPath, "']") {
		return "", "", false
	}
	s := strings.TrimSuffix(fieldPath, "']")
	path, subscript, ok = strings.Cut(s, "['")
	if !ok || path == "" || subscript == "" {
		return "", "", false
	}
	return path, subscript, true
}

func validateResourceFieldSelector(fs *corev1.ResourceFieldSelector, requireContainer bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if requireContainer && fs.ContainerName == "" {
		allErrs = append(allErrs, field.Required(fldPath.Child("containerName"), ""))
	}
	switch {
	case fs.Resource == "":
		allErrs = append(allErrs, field.Required(fldPath.Child("resource"), ""))
	case slices.Contains(resourceFieldPaths, fs.Resource),
		strings.HasPrefix(fs.Resource, "limits.hugepages-"),
		strings.HasPrefix(fs.Resource, "requests.hugepages-"):
	default:
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("resource"), fs.Resource, resourceFieldPaths))
	}
	return allErrs
}

func validateEnvFrom(sources []corev1.EnvFromSource, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, ev := range sources {
		idxPath := fldPath.Index(i)
		if ev.Prefix != "" {
			allErrs = append(allErrs, validateMessages(idxPath.Child("prefix"), ev.Prefix, utilvalidation.IsRelaxedEnvVarName(ev.Prefix))...)
		}
		n := 0
		checkRef := func(kind, name string) {
			n++
			namePath := idxPath.Child(kind, "name")
			if name == "" {
				allErrs = append(allErrs, field.Required(namePath, ""))
			} else {
				allErrs = append(allErrs, validateDNS1123Subdomain(name, namePath)...)
			}
		}
		if ev.ConfigMapRef != nil {
			checkRef("configMapRef", ev.ConfigMapRef.Name)
		}
		if ev.SecretRef != nil {
			checkRef("secretRef", ev.SecretRef.Name)
		}
		switch {
		case n == 0:
			allErrs = append(allErrs, field.Invalid(idxPath, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			allErrs = append(allErrs, field.Invalid(idxPath, "", "may not have more than one field specified at a time"))
		}
	}
	return allErrs
}

func validateVolumeMounts(mounts []corev1.VolumeMount, vols map[string]bool, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	mountPaths := map[string]bool{}
	for i, m := range mounts {
		idxPath := fldPath.Index(i)
		if m.Name == "" {
			allErrs = append(allErrs, field.Required(idxPath.Child("name"), ""))
		} else if !vols[m.Name] {
			allErrs = append(allErrs, field.NotFound(idxPath.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			allErrs = append(allErrs, field.Required(idxPath.Child("mountPath"), ""))
		} else if mountPaths[m.MountPath] {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPaths[m.MountPath] = true
		if m.SubPath != "" {
			allErrs = append(allErrs, validateLocalDescendingPath(m.SubPath, idxPath.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				allErrs = append(allErrs, field.Invalid(idxPath.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			allErrs = append(allErrs, validateLocalDescendingPath(m.SubPathExpr, idxPath.Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil && !slices.Contains(supportedMountPropagation, *m.MountPropagation) {
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("mountPropagation"), *m.MountPropagation, supportedMountPropagation))
		}
	}
	return allErrs
}

// validateResources checks container resources: known names, quantities
// that are not negative, and requests within limits. Resources that cannot
// be overcommitted (hugepages, extended resources) need request == limit.
func validateResources(r *corev1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	limPath := fldPath.Child("limits")
	reqPath := fldPath.Child("requests")
	for _, name := range sortedKeys(r.Limits) {
		allErrs = append(allErrs, validateResourceQuantity(name, r.Limits[name], limPath.Key(string(name)))...)
	}
	for _, name := range sortedKeys(r.Requests) {
		q := r.Requests[name]
		allErrs = append(allErrs, validateResourceQuantity(name, q, reqPath.Key(string(name)))...)
		lim, ok := r.Limits[name]
		switch {
		case ok && !overcommitAllowed(name) && q.Cmp(lim) != 0:
			allErrs = append(allErrs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", name, lim.String())))
		case ok && q.Cmp(lim) > 0:
			allErrs = append(allErrs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
		case !ok && !overcommitAllowed(name):
			allErrs = append(allErrs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
	}
	return allErrs
}

var standardContainerResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage}

// validateResourceQuantity checks one container resource: a standard or
// extended name, and a quantity that is not negative (and whole, for an
// extended resource).
func validateResourceQuantity(name corev1.ResourceName, q resource.Quantity, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	switch {
	case isExtendedResource(name):
		allErrs = append(allErrs, validateMessages(fldPath, name, utilvalidation.IsQualifiedName(string(name)))...)
		if q.MilliValue()%1000 != 0 {
			allErrs = append(allErrs, field.Invalid(fldPath, q.String(), "must be an integer"))
		}
	case !slices.Contains(standardContainerResources, name) && !isHugePages(name):
		allErrs = append(allErrs, field.Invalid(fldPath, name, "must be a standard resource for containers"))
	}
	if q.Sign() < 0 {
		allErrs = append(allErrs, field.Invalid(fldPath, q.String(), msgNotNegative))
	}
	return allErrs
}

// isExtendedResource reports whether name is a domain-prefixed resource
// outside kubernetes.io, such as example.com/gpu.
func isExtendedResource(name corev1.ResourceName) bool {
	s := string(name)
	return strings.Contains(s, "/") && !strings.Contains(s, corev1.ResourceDefaultNamespacePrefix)
}

func isHugePages(name corev1.ResourceName) bool {
	return strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

func overcommitAllowed(name corev1.ResourceName) bool {
	return !isExtendedResource(name) && !isHugePages(name)
}

func validateDNSConfig(c *corev1.PodDNSConfig, policy corev1.DNSPolicy, fldPath *field.Path) field.ErrorList {
	if policy == corev1.DNSNone {
		if c == nil {
			return field.ErrorList{field.Required(fldPath, "must provide `dnsConfig` when `dnsPolicy` is None")}
		}
		if len(c.Nameservers) == 0 {
			return field.ErrorList{field.Required(fldPath.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None")}
		}
	}
	if c == nil {
		return nil
	}
	var allErrs field.ErrorList
	if len(c.Nameservers) > maxDNSNameservers {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("nameservers"), c.Nameservers, fmt.Sprintf("must not have more than %d nameservers", maxDNSNameservers)))
	}
	for i, ns := range c.Nameservers {
		allErrs = append(allErrs, utilvalidation.IsValidIP(fldPath.Child("nameservers").Index(i), ns)...)
	}
	if len(c.Searches) > maxDNSSearchPaths {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("searches"), c.Searches, fmt.Sprintf("must not have more than %d search paths", maxDNSSearchPaths)))
	}
	if n := len(strings.Join(c.Searches, " ")); n > maxDNSSearchListChars {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("searches"), c.Searches, fmt.Sprintf("must not have more than %d characters (including spaces) in the search list", maxDNSSearchListChars)))
	}
	for i, s := range c.Searches {
		if s != "." {
			allErrs = append(allErrs, validateDNS1123Subdomain(strings.TrimSuffix(s, "."), fldPath.Child("searches").Index(i))...)
		}
	}
	for i, o := range c.Options {
		if o.Name == "" {
			allErrs = append(allErrs, field.Required(fldPath.Child("options").Index(i), "must not be empty"))
		}
	}
	return allErrs
}

func validateTolerations(tolerations []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for i, t := range tolerations {
		idxPath := fldPath.Index(i)
		if t.Key != "" {
			allErrs = append(allErrs, metav1validation.ValidateLabelName(t.Key, idxPath.Child("key"))...)
		}
		// An empty key with Exists matches every taint.
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			allErrs = append(allErrs, field.Invalid(idxPath.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			if msgs := utilvalidation.IsValidLabelValue(t.Value); len(msgs) > 0 {
				allErrs = append(allErrs, field.Invalid(idxPath.Child("operator"), t.Value, strings.Join(msgs, ";")))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				allErrs = append(allErrs, field.Invalid(idxPath.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("operator"), t.Operator, supportedTolerationOps))
		}
		if t.Effect != "" && !slices.Contains(supportedTaintEffects, t.Effect) {
			allErrs = append(allErrs, field.NotSupported(idxPath.Child("effect"), t.Effect, supportedTaintEffects))
		}
	}
	return allErrs
}

// validatePodUpdate enforces that a pod's spec is fixed once created, but
// for the fields listed in updatablePodSpecFields.
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	if len(pod.Spec.Containers) != len(old.Spec.Containers) || len(pod.Spec.InitContainers) != len(old.Spec.InitContainers) {
		return field.ErrorList{field.Forbidden(specPath.Child("containers"), "pod updates may not add or remove containers")}
	}
	var allErrs field.ErrorList
	if oldDeadline := old.Spec.ActiveDeadlineSeconds; oldDeadline != nil {
		switch newDeadline := pod.Spec.ActiveDeadlineSeconds; {
		case newDeadline == nil:
			allErrs = append(allErrs, field.Invalid(specPath.Child("activeDeadlineSeconds"), newDeadline, "must not update from a positive integer to nil value"))
		case *newDeadline > *oldDeadline:
			allErrs = append(allErrs, field.Invalid(specPath.Child("activeDeadlineSeconds"), *newDeadline, "must be less than or equal to previous value"))
		}
	}
	allErrs = append(allErrs, validateOnlyAddedTolerations(pod.Spec.Tolerations, old.Spec.Tolerations, specPath.Child("tolerations"))...)

	// Copy the updatable fields from old into a copy of the new spec: what
	// remains must then be unchanged.
	munged := pod.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = old.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = old.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = old.Spec.ActiveDeadlineSeconds
	munged.Tolerations = old.Spec.Tolerations
	munged.TerminationGracePeriodSeconds = old.Spec.TerminationGracePeriodSeconds
	if changed := changedFields(*munged, old.Spec); len(changed) > 0 {
		allErrs = append(allErrs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s (changed: %s)",
			strings.Join(updatablePodSpecFields, ","), strings.Join(changed, ", "))))
	}
	return allErrs
}

// ValidateEphemeralContainersUpdate checks a write of a pod's
// ephemeralcontainers subresource (kubectl debug): the pod is valid, and
// ephemeral containers are only added, never changed or removed, as kube
// allows.
func ValidateEphemeralContainersUpdate(pod, old *corev1.Pod) field.ErrorList {
	allErrs := validate(pod, true, false)
	ephPath := field.NewPath("spec", "ephemeralContainers")
	byName := map[string]*corev1.EphemeralContainer{}
	for i := range pod.Spec.EphemeralContainers {
		byName[pod.Spec.EphemeralContainers[i].Name] = &pod.Spec.EphemeralContainers[i]
	}
	for i := range old.Spec.EphemeralContainers {
		o := &old.Spec.EphemeralContainers[i]
		n, ok := byName[o.Name]
		switch {
		case !ok:
			allErrs = append(allErrs, field.Forbidden(ephPath, fmt.Sprintf("existing ephemeral containers %q may not be removed", o.Name)))
		case !apiequality.Semantic.DeepEqual(o, n):
			allErrs = append(allErrs, field.Forbidden(ephPath, fmt.Sprintf("existing ephemeral containers %q may not be changed", o.Name)))
		}
	}
	return allErrs
}

// validateOnlyAddedTolerations allows new tolerations and new
// tolerationSeconds, but no removed or otherwise changed toleration.
func validateOnlyAddedTolerations(tolerations, old []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	for _, o := range old {
		found := false
		for _, t := range tolerations {
			o.TolerationSeconds = t.TolerationSeconds
			if apiequality.Semantic.DeepEqual(o, t) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(fldPath, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return nil
}

// changedFields lists the JSON names of the top-level fields in which two
// structs of the same type differ.
func changedFields[T any](a, b T) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var changed []string
	for i := range va.NumField() {
		if !apiequality.Semantic.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			f := va.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			changed = append(changed, name)
		}
	}
	return changed
}
