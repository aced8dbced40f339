package kubelet

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// containerEnv resolves a container's environment as the kubelet does:
// envFrom first, then env (a Value has its $(VAR) references expanded
// against what came before and the service variables; a valueFrom is read
// from its source), then the service variables not already set.
func (k *Kubelet) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIP string) ([]runtime.KeyValue, error) {
	svc := k.serviceEnv(pod)
	var order []string
	vars := map[string]string{}
	set := func(name, value string) {
		if _, ok := vars[name]; !ok {
			order = append(order, name)
		}
		vars[name] = value
	}
	cms := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, err := k.configMap(ctx, pod.Namespace, ef.ConfigMapRef.Name, cms)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ef.ConfigMapRef.Optional) {
					continue
				}
				return nil, err
			}
			var invalid []string
			for _, key := range sortedKeys(cm.Data) {
				name := ef.Prefix + key
				if len(validation.IsRelaxedEnvVarName(name)) > 0 {
					invalid = append(invalid, name)
					continue
				}
				set(name, cm.Data[key])
			}
			if len(invalid) > 0 {
				k.event(pod, c.Name, corev1.EventTypeWarning, "InvalidEnvironmentVariableNames",
					"Keys [%s] from the EnvFrom configMap %s/%s were skipped since they are considered invalid environment variable names.",
					strings.Join(invalid, ", "), pod.Namespace, cm.Name)
			}
		case ef.SecretRef != nil:
			s, err := k.secret(ctx, pod.Namespace, ef.SecretRef.Name, secrets)
			if err != nil {
				if apierrors.IsNotFound(err) && optional(ef.SecretRef.Optional) {
					continue
				}
				return nil, err
			}
			var invalid []string
			for _, key := range sortedKeys(s.Data) {
				name := ef.Prefix + key
				if len(validation.IsRelaxedEnvVarName(name)) > 0 {
					invalid = append(invalid, name)
					continue
				}
				set(name, string(s.Data[key]))
			}
			if len(invalid) > 0 {
				k.event(pod, c.Name, corev1.EventTypeWarning, "InvalidEnvironmentVariableNames",
					"Keys [%s] from the EnvFrom secret %s/%s were skipped since they are considered invalid environment variable names.",
					strings.Join(invalid, ", "), pod.Namespace, s.Name)
			}
		}
	}
	lookup := mapping(vars, svc)
	for _, e := range c.Env {
		if e.Value != "" || e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup))
			continue
		}
		v, ok, err := k.valueFrom(ctx, pod, c, e.ValueFrom, podIP, cms, secrets)
		if err != nil {
			return nil, err
		}
		if ok {
			set(e.Name, v)
		}
	}
	env := make([]runtime.KeyValue, 0, len(order)+len(svc))
	for _, name := range order {
		env = append(env, runtime.KeyValue{Key: name, Value: vars[name]})
	}
	for _, name := range sortedKeys(svc) {
		if _, ok := vars[name]; !ok {
			env = append(env, runtime.KeyValue{Key: name, Value: svc[name]})
		}
	}
	return env, nil
}

// valueFrom reads one env var's source. ok is false for an optional
// source that is missing: the variable is then not set at all.
func (k *Kubelet) valueFrom(ctx context.Context, pod *corev1.Pod, c *corev1.Container, vf *corev1.EnvVarSource, podIP string,
	cms map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret) (value string, ok bool, err error) {
	switch {
	case vf.FieldRef != nil:
		v, err := podField(pod, vf.FieldRef.FieldPath, podIP, k.cfg.NodeIP)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := k.resourceField(pod, c, vf.ResourceFieldRef)
		return v, err == nil, err
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		cm, err := k.configMap(ctx, pod.Namespace, ref.Name, cms)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, found := cm.Data[ref.Key]
		if !found {
			if b, bin := cm.BinaryData[ref.Key]; bin {
				return string(b), true, nil
			}
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, true, nil
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		s, err := k.secret(ctx, pod.Namespace, ref.Name, secrets)
		if err != nil {
			if apierrors.IsNotFound(err) && optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, found := s.Data[ref.Key]
		if !found {
			if optional(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), true, nil
	}
	return "", false, nil
}

// configMap reads a ConfigMap once per container start.
func (k *Kubelet) configMap(ctx context.Context, ns, name string, cache map[string]*corev1.ConfigMap) (*corev1.ConfigMap, error) {
	if cm, ok := cache[name]; ok {
		return cm, nil
	}
	cm, err := k.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(corev1.Resource("configmap"), name)
		}
		return nil, fmt.Errorf("get configmap %s/%s: %w", ns, name, err)
	}
	if cache != nil {
		cache[name] = cm
	}
	return cm, nil
}

// secret reads a Secret once per container start.
func (k *Kubelet) secret(ctx context.Context, ns, name string, cache map[string]*corev1.Secret) (*corev1.Secret, error) {
	if s, ok := cache[name]; ok {
		return s, nil
	}
	s, err := k.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, apierrors.NewNotFound(corev1.Resource("secret"), name)
		}
		return nil, fmt.Errorf("get secret %s/%s: %w", ns, name, err)
	}
	if cache != nil {
		cache[name] = s
	}
	return s, nil
}

func optional(b *bool) bool { return b != nil && *b }

// podField is a fieldRef's value, for env and downwardAPI volumes.
func podField(pod *corev1.Pod, path, podIP, hostIP string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "status.podIP", "status.podIPs":
		if podIP == "" {
			podIP = pod.Status.PodIP
		}
		return podIP, nil
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

// subscript reads `prefix['key']` paths.
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// formatMap writes labels or annotations as downwardAPI files do:
// key="value" lines, sorted, values quoted.
func formatMap(m map[string]string) string {
	var b strings.Builder
	for i, key := range sortedKeys(m) {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%s", key, strconv.Quote(m[key]))
	}
	return b.String()
}

// resourceField is a resourceFieldRef's value: the container's request or
// limit, a missing limit being the node's allocatable, divided by the
// divisor and rounded up.
func (k *Kubelet) resourceField(pod *corev1.Pod, self *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	c := self
	if ref.ContainerName != "" {
		if c = findContainer(pod, ref.ContainerName); c == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef %q: containerName is required", ref.Resource)
	}
	kind, name, _ := strings.Cut(ref.Resource, ".")
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	switch kind {
	case "limits":
		if v, ok := c.Resources.Limits[rn]; ok {
			q = v
		} else if v, ok := k.allocatable()[rn]; ok {
			q = v
		}
	case "requests":
		q = c.Resources.Requests[rn]
	default:
		return "", fmt.Errorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

// serviceEnv is the Docker-links-style variables of the Services a pod
// sees: those of its namespace when enableServiceLinks (the default), and
// always the API server's "kubernetes" Service of the default namespace.
func (k *Kubelet) serviceEnv(pod *corev1.Pod) map[string]string {
	services := map[string]*corev1.Service{}
	if k.svcLister != nil {
		if all, err := k.svcLister.Services(metav1.NamespaceDefault).List(labels.Everything()); err == nil {
			for _, s := range all {
				if s.Name == "kubernetes" && serviceIPSet(s) {
					services[s.Name] = s
				}
			}
		}
		if pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks {
			if all, err := k.svcLister.Services(pod.Namespace).List(labels.Everything()); err == nil {
				for _, s := range all {
					if serviceIPSet(s) {
						services[s.Name] = s
					}
				}
			}
		}
	}
	env := map[string]string{}
	for _, s := range services {
		for _, kv := range serviceVars(s) {
			env[kv.Key] = kv.Value
		}
	}
	return env
}

func serviceIPSet(s *corev1.Service) bool {
	return s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone && len(s.Spec.Ports) > 0
}

// serviceVars are one Service's variables, as Kubernetes's envvars
// package writes them.
func serviceVars(s *corev1.Service) []runtime.KeyValue {
	prefix := envName(s.Name)
	ip := s.Spec.ClusterIP
	out := []runtime.KeyValue{
		{Key: prefix + "_SERVICE_HOST", Value: ip},
		{Key: prefix + "_SERVICE_PORT", Value: strconv.Itoa(int(s.Spec.Ports[0].Port))},
	}
	for _, p := range s.Spec.Ports {
		if p.Name != "" {
			out = append(out, runtime.KeyValue{Key: prefix + "_SERVICE_PORT_" + envName(p.Name), Value: strconv.Itoa(int(p.Port))})
		}
	}
	for i, p := range s.Spec.Ports {
		proto := string(p.Protocol)
		if proto == "" {
			proto = string(corev1.ProtocolTCP)
		}
		url := strings.ToLower(proto) + "://" + net.JoinHostPort(ip, strconv.Itoa(int(p.Port)))
		if i == 0 {
			out = append(out, runtime.KeyValue{Key: prefix + "_PORT", Value: url})
		}
		pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(proto))
		out = append(out,
			runtime.KeyValue{Key: pp, Value: url},
			runtime.KeyValue{Key: pp + "_PROTO", Value: strings.ToLower(proto)},
			runtime.KeyValue{Key: pp + "_PORT", Value: strconv.Itoa(int(p.Port))},
			runtime.KeyValue{Key: pp + "_ADDR", Value: ip},
		)
	}
	return out
}

func envName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// mapping looks a $(VAR) up in maps in order; an unknown one stays as
// written, as Kubernetes leaves it.
func mapping(maps ...map[string]string) func(string) string {
	return func(name string) string {
		for _, m := range maps {
			if v, ok := m[name]; ok {
				return v
			}
		}
		return "$(" + name + ")"
	}
}

// expand replaces $(VAR) references, with $$ escaping a $, exactly as
// Kubernetes's third_party/forked/golang/expansion does.
func expand(input string, lookup func(string) string) string {
	var b strings.Builder
	checkpoint := 0
	for cursor := 0; cursor < len(input); cursor++ {
		if input[cursor] != '$' || cursor+1 >= len(input) {
			continue
		}
		b.WriteString(input[checkpoint:cursor])
		read, isVar, advance := readVariable(input[cursor+1:])
		if isVar {
			b.WriteString(lookup(read))
		} else {
			b.WriteString(read)
		}
		cursor += advance
		checkpoint = cursor + 1
	}
	return b.String() + input[checkpoint:]
}

func readVariable(input string) (string, bool, int) {
	switch input[0] {
	case '$':
		return "$", false, 1
	case '(':
		for i := 1; i < len(input); i++ {
			if input[i] == ')' {
				return input[1:i], true, i + 1
			}
		}
		return "$(", false, 1
	}
	return "$" + input[:1], false, 1
}

// expandAll expands every string of a command or args list.
func expandAll(in []string, vars map[string]string) []string {
	if in == nil {
		return nil
	}
	lookup := mapping(vars)
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, lookup)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
