package kubelet

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// dockerAuth is one registry's entry in a docker config.
type dockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"` // base64 of "user:password"
}

// pullCredentials reads the registry credentials of the pod's
// imagePullSecrets. As in Kubernetes, a secret that cannot be read is a
// Warning event and the pull goes on without it.
func (k *Kubelet) pullCredentials(ctx context.Context, pod *corev1.Pod, container string) []runtime.RegistryCredential {
	var creds []runtime.RegistryCredential
	var missing []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := k.secret(ctx, pod.Namespace, ref.Name, nil)
		if err == nil {
			var c []runtime.RegistryCredential
			if c, err = registryCredentials(s); err == nil {
				creds = append(creds, c...)
				continue
			}
		}
		k.log.Debug("image pull secret", logKeyPod, pod.Namespace+"/"+pod.Name, "secret", ref.Name, logKeyError, err)
		missing = append(missing, ref.Name)
	}
	if len(missing) > 0 {
		k.event(pod, container, corev1.EventTypeWarning, "FailedToRetrieveImagePullSecret",
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(missing, ", "))
	}
	return creds
}

// registryCredentials reads a kubernetes.io/dockerconfigjson or
// kubernetes.io/dockercfg Secret.
func registryCredentials(s *corev1.Secret) ([]runtime.RegistryCredential, error) {
	var auths map[string]dockerAuth
	switch {
	case s.Type == corev1.SecretTypeDockerConfigJson || len(s.Data[corev1.DockerConfigJsonKey]) > 0:
		var cfg struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			return nil, fmt.Errorf("secret %s: %s: %w", s.Name, corev1.DockerConfigJsonKey, err)
		}
		auths = cfg.Auths
	case s.Type == corev1.SecretTypeDockercfg || len(s.Data[corev1.DockerConfigKey]) > 0:
		if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &auths); err != nil {
			return nil, fmt.Errorf("secret %s: %s: %w", s.Name, corev1.DockerConfigKey, err)
		}
	default:
		return nil, fmt.Errorf("secret %s is of type %q, not %s", s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	var out []runtime.RegistryCredential
	for key, a := range auths {
		user, pass := a.Username, a.Password
		if user == "" && a.Auth != "" {
			b, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("secret %s: auth of %s: %w", s.Name, key, err)
			}
			user, pass, _ = strings.Cut(string(b), ":")
		}
		out = append(out, runtime.RegistryCredential{Host: registryHost(key), Username: user, Password: pass})
	}
	return out, nil
}

// registryHost turns a docker config key ("https://index.docker.io/v1/",
// "registry.example.com:5000") into the registry's host[:port].
func registryHost(key string) string {
	h := key
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}
