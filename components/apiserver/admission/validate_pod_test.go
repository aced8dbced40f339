package admission

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidate_Pod(t *testing.T) {
	const c0 = "spec.containers[0]"
	tests := []struct {
		name   string
		mutate func(p *corev1.Pod)
		want   []wantErr
	}{
		{"valid", func(p *corev1.Pod) {}, nil},

		// metadata
		{"name required", func(p *corev1.Pod) { p.Name = "" }, []wantErr{required("metadata.name")}},
		{"name not a subdomain", func(p *corev1.Pod) { p.Name = "Web_0" }, []wantErr{invalid("metadata.name")}},
		{"namespace required", func(p *corev1.Pod) { p.Namespace = "" }, []wantErr{required("metadata.namespace")}},
		{"bad label", func(p *corev1.Pod) { p.Labels["bad key!"] = "x" }, []wantErr{invalid("metadata.labels")}},
		{"bad label value", func(p *corev1.Pod) { p.Labels["app"] = "not ok" }, []wantErr{invalid("metadata.labels")}},
		{"annotations too large", func(p *corev1.Pod) {
			p.Annotations = map[string]string{"big": strings.Repeat("x", 256*1024+1)}
		}, []wantErr{tooLong("metadata.annotations")}},

		// containers
		{"containers required", func(p *corev1.Pod) { p.Spec.Containers = nil }, []wantErr{required("spec.containers")}},
		{"container name required", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }, []wantErr{required(c0 + ".name")}},
		{"container name not a label", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Web.Server" }, []wantErr{invalid(c0 + ".name")}},
		{"container names unique", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
			p.Spec.Containers[1].Ports = nil
		}, []wantErr{duplicate("spec.containers[1].name")}},
		{"init container name clashes with container", func(p *corev1.Pod) { p.Spec.InitContainers[0].Name = "web" },
			[]wantErr{duplicate("spec.initContainers[0].name")}},
		{"image required", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []wantErr{required(c0 + ".image")}},
		{"init image required", func(p *corev1.Pod) { p.Spec.InitContainers[0].Image = "" }, []wantErr{required("spec.initContainers[0].image")}},
		{"image whitespace", func(p *corev1.Pod) { p.Spec.Containers[0].Image = " nginx" }, []wantErr{invalid(c0 + ".image")}},
		{"imagePullPolicy unsupported", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "Sometimes" },
			[]wantErr{notSupported(c0 + ".imagePullPolicy")}},
		{"imagePullPolicy required", func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = "" },
			[]wantErr{required(c0 + ".imagePullPolicy")}},
		{"terminationMessagePolicy unsupported", func(p *corev1.Pod) { p.Spec.Containers[0].TerminationMessagePolicy = "Stdout" },
			[]wantErr{notSupported(c0 + ".terminationMessagePolicy")}},

		// ports
		{"containerPort zero", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 0 },
			[]wantErr{required(c0 + ".ports[0].containerPort")}},
		{"containerPort too big", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 65536 },
			[]wantErr{invalid(c0 + ".ports[0].containerPort")}},
		{"hostPort out of range", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].HostPort = -1 },
			[]wantErr{invalid(c0 + ".ports[0].hostPort")}},
		{"port name too long", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "a-very-long-port-name" },
			[]wantErr{invalid(c0 + ".ports[0].name")}},
		{"port name not IANA", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "web_port" },
			[]wantErr{invalid(c0 + ".ports[0].name")}},
		{"port names unique", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "http", ContainerPort: 81, Protocol: corev1.ProtocolTCP})
		}, []wantErr{duplicate(c0 + ".ports[1].name")}},
		{"port protocol unsupported", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "ICMP" },
			[]wantErr{notSupported(c0 + ".ports[0].protocol")}},
		{"host ports unique", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{
				{ContainerPort: 80, HostPort: 8080, Protocol: corev1.ProtocolTCP},
				{ContainerPort: 81, HostPort: 8080, Protocol: corev1.ProtocolTCP},
			}
			p.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromInt32(80)
		}, []wantErr{duplicate(c0 + ".ports[1].hostPort")}},
		{"hostNetwork needs hostPort == containerPort", func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Spec.Containers[0].Ports[0].HostPort = 8080
		}, []wantErr{invalid(c0 + ".ports[0].containerPort")}},

		// pod-level enums and names
		{"restartPolicy unsupported", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []wantErr{notSupported("spec.restartPolicy")}},
		{"restartPolicy required", func(p *corev1.Pod) { p.Spec.RestartPolicy = "" }, []wantErr{required("spec.restartPolicy")}},
		{"dnsPolicy unsupported", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Google" }, []wantErr{notSupported("spec.dnsPolicy")}},
		{"dnsPolicy None needs dnsConfig", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSNone }, []wantErr{required("spec.dnsConfig")}},
		{"dnsPolicy None with nameserver", func(p *corev1.Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"svc.cluster.local"}}
		}, nil},
		{"dnsConfig bad nameserver", func(p *corev1.Pod) { p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"dns.google"}} },
			[]wantErr{invalid("spec.dnsConfig.nameservers[0]")}},
		{"nodeSelector bad label", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "fast ssd"} },
			[]wantErr{invalid("spec.nodeSelector")}},
		{"serviceAccountName invalid", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "CI_Bot" }, []wantErr{invalid("spec.serviceAccountName")}},
		{"nodeName invalid", func(p *corev1.Pod) { p.Spec.NodeName = "node_1" }, []wantErr{invalid("spec.nodeName")}},
		{"activeDeadlineSeconds zero", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(0)) },
			[]wantErr{invalid("spec.activeDeadlineSeconds")}},
		{"hostname invalid", func(p *corev1.Pod) { p.Spec.Hostname = "web.0" }, []wantErr{invalid("spec.hostname")}},
		{"ephemeral containers on create", func(p *corev1.Pod) {
			p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", ImagePullPolicy: corev1.PullAlways, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}}}
		}, []wantErr{forbidden("spec.ephemeralContainers")}},

		// resources
		{"request above limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceMemory] = resource.MustParse("256Mi")
		}, []wantErr{invalid(c0 + ".resources.requests")}},
		{"negative quantity", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("-1")
		}, []wantErr{invalid(c0 + ".resources.requests[cpu]")}},
		{"unknown resource", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["gpu"] = resource.MustParse("1")
		}, []wantErr{invalid(c0 + ".resources.limits[gpu]")}},
		{"extended resource request needs limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("1")
		}, []wantErr{required(c0 + ".resources.limits")}},
		{"extended resource must be whole", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["example.com/gpu"] = resource.MustParse("500m")
		}, []wantErr{invalid(c0 + ".resources.limits[example.com/gpu]")}},
		{"extended resource request equals limit", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits["example.com/gpu"] = resource.MustParse("2")
			p.Spec.Containers[0].Resources.Requests["example.com/gpu"] = resource.MustParse("2")
		}, nil},

		// env
		{"env name required", func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].Name = "" }, []wantErr{required(c0 + ".env[1].name")}},
		{"env name with =", func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].Name = "A=B" }, []wantErr{invalid(c0 + ".env[1].name")}},
		{"env name relaxed", func(p *corev1.Pod) { p.Spec.Containers[0].Env[1].Name = "1st.value-OK" }, nil},
		{"env value and valueFrom", func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Value = "x" }, []wantErr{invalid(c0 + ".env[0].valueFrom")}},
		{"env valueFrom empty", func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].ValueFrom = &corev1.EnvVarSource{} },
			[]wantErr{invalid(c0 + ".env[0].valueFrom")}},
		{"env fieldRef unsupported", func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].ValueFrom.FieldRef.FieldPath = "spec.hostname" },
			[]wantErr{notSupported(c0 + ".env[0].valueFrom.fieldRef.fieldPath")}},
		{"env fieldRef label subscript", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env[0].ValueFrom.FieldRef.FieldPath = "metadata.labels['app']"
		}, nil},
		{"env secretKeyRef key required", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env[0].ValueFrom = &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"},
			}}
		}, []wantErr{required(c0 + ".env[0].valueFrom.secretKeyRef.key")}},
		{"envFrom needs a source", func(p *corev1.Pod) { p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{Prefix: "APP_"}} },
			[]wantErr{invalid(c0 + ".envFrom[0]")}},
		{"envFrom configMapRef name required", func(p *corev1.Pod) {
			p.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{}}}
		}, []wantErr{required(c0 + ".envFrom[0].configMapRef.name")}},

		// volumes and mounts
		{"volume name required", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}, []wantErr{required("spec.volumes[2].name")}},
		{"volume name not a label", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "Scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}, []wantErr{invalid("spec.volumes[2].name")}},
		{"volume names unique", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		}, []wantErr{duplicate("spec.volumes[2].name")}},
		{"volume with two sources", func(p *corev1.Pod) {
			p.Spec.Volumes[1].HostPath = &corev1.HostPathVolumeSource{Path: "/tmp"}
		}, []wantErr{forbidden("spec.volumes[1].emptyDir")}},
		{"configMap volume name required", func(p *corev1.Pod) { p.Spec.Volumes[0].ConfigMap.Name = "" },
			[]wantErr{required("spec.volumes[0].configMap.name")}},
		{"configMap volume bad mode", func(p *corev1.Pod) { p.Spec.Volumes[0].ConfigMap.DefaultMode = new(int32(0o1777)) },
			[]wantErr{invalid("spec.volumes[0].configMap.defaultMode")}},
		{"configMap volume item escapes", func(p *corev1.Pod) {
			p.Spec.Volumes[0].ConfigMap.Items = []corev1.KeyToPath{{Key: "k", Path: "../etc/passwd"}}
		}, []wantErr{invalid("spec.volumes[0].configMap.items[0].path")}},
		{"secret volume secretName required", func(p *corev1.Pod) {
			p.Spec.Volumes[0].ConfigMap = nil
			p.Spec.Volumes[0].Secret = &corev1.SecretVolumeSource{DefaultMode: new(int32(0o400))}
		}, []wantErr{required("spec.volumes[0].secret.secretName")}},
		{"pvc volume claimName required", func(p *corev1.Pod) {
			p.Spec.Volumes[0].ConfigMap = nil
			p.Spec.Volumes[0].PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{}
		}, []wantErr{required("spec.volumes[0].persistentVolumeClaim.claimName")}},
		{"hostPath path required", func(p *corev1.Pod) {
			p.Spec.Volumes[1].EmptyDir = nil
			p.Spec.Volumes[1].HostPath = &corev1.HostPathVolumeSource{Type: new(corev1.HostPathDirectory)}
		}, []wantErr{required("spec.volumes[1].hostPath.path")}},
		{"volumeMount refers to missing volume", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].Name = "conf" },
			[]wantErr{notFound(c0 + ".volumeMounts[0].name")}},
		{"volumeMount mountPath required", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].MountPath = "" },
			[]wantErr{required(c0 + ".volumeMounts[0].mountPath")}},
		{"volumeMount mountPath unique", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[1].MountPath = "/etc/nginx/conf.d" },
			[]wantErr{invalid(c0 + ".volumeMounts[1].mountPath")}},
		{"volumeMount subPath absolute", func(p *corev1.Pod) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "/etc" },
			[]wantErr{invalid(c0 + ".volumeMounts[0].subPath")}},

		// probes and hooks
		{"probe without handler", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet = nil },
			[]wantErr{required(c0 + ".livenessProbe")}},
		{"probe with two handlers", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe.Exec = &corev1.ExecAction{Command: []string{"true"}}
		}, []wantErr{forbidden(c0 + ".readinessProbe.tcpSocket")}},
		{"probe bad port name", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromString("Admin_Port") },
			[]wantErr{invalid(c0 + ".livenessProbe.httpGet.port")}},
		{"probe bad scheme", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.HTTPGet.Scheme = "FTP" },
			[]wantErr{notSupported(c0 + ".livenessProbe.httpGet.scheme")}},
		{"liveness successThreshold must be 1", func(p *corev1.Pod) { p.Spec.Containers[0].LivenessProbe.SuccessThreshold = 2 },
			[]wantErr{invalid(c0 + ".livenessProbe.successThreshold")}},
		{"readiness successThreshold may be 2", func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe.SuccessThreshold = 2 }, nil},
		{"probe negative period", func(p *corev1.Pod) { p.Spec.Containers[0].ReadinessProbe.PeriodSeconds = -1 },
			[]wantErr{invalid(c0 + ".readinessProbe.periodSeconds")}},
		{"exec probe command required", func(p *corev1.Pod) {
			p.Spec.Containers[0].ReadinessProbe.TCPSocket = nil
			p.Spec.Containers[0].ReadinessProbe.Exec = &corev1.ExecAction{}
		}, []wantErr{required(c0 + ".readinessProbe.exec.command")}},
		{"preStop without handler", func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{}}
		}, []wantErr{required(c0 + ".lifecycle.preStop")}},
		{"preStop sleep beyond grace period", func(p *corev1.Pod) {
			p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 31}}}
		}, []wantErr{invalid(c0 + ".lifecycle.preStop.sleep")}},
		{"init container probe forbidden", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].ReadinessProbe = p.Spec.Containers[0].ReadinessProbe
		}, []wantErr{forbidden("spec.initContainers[0].readinessProbe")}},
		{"sidecar init container probe allowed", func(p *corev1.Pod) {
			p.Spec.InitContainers[0].RestartPolicy = new(corev1.ContainerRestartPolicyAlways)
			p.Spec.InitContainers[0].ReadinessProbe = p.Spec.Containers[0].ReadinessProbe
		}, nil},

		// tolerations
		{"toleration Exists with value", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists, Value: "db"}}
		}, []wantErr{invalid("spec.tolerations[0].operator")}},
		{"toleration bad effect", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Value: "db", Effect: "NoRun"}}
		}, []wantErr{notSupported("spec.tolerations[0].effect")}},
		{"toleration seconds need NoExecute", func(p *corev1.Pod) {
			p.Spec.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: new(int64(5))}}
		}, []wantErr{invalid("spec.tolerations[0].effect")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := validPod()
			Default(p)
			tc.mutate(p)
			checkErrs(t, Validate(p, true), tc.want...)
		})
	}
}

func TestValidate_podTemplate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *corev1.PodTemplate)
		want   []wantErr
	}{
		{"valid", func(*corev1.PodTemplate) {}, nil},
		{"image whitespace allowed in templates", func(pt *corev1.PodTemplate) { pt.Template.Spec.Containers[0].Image = " " }, nil},
		{"template label invalid", func(pt *corev1.PodTemplate) { pt.Template.Labels = map[string]string{"a": "b c"} },
			[]wantErr{invalid("template.metadata.labels")}},
		{"ephemeral containers forbidden", func(pt *corev1.PodTemplate) {
			pt.Template.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
				Name: "debug", Image: "busybox", ImagePullPolicy: corev1.PullAlways, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
			}}}
		}, []wantErr{forbidden("template.spec.ephemeralContainers")}},
		{"hostNetwork template may leave hostPort unset", func(pt *corev1.PodTemplate) { pt.Template.Spec.HostNetwork = true }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt := &corev1.PodTemplate{Template: podTemplate(map[string]string{"app": "web"})}
			pt.Name, pt.Namespace = "tmpl", "default"
			Default(pt)
			tc.mutate(pt)
			checkErrs(t, Validate(pt, true), tc.want...)
		})
	}
}
