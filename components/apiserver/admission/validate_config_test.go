package admission

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestValidate_ConfigMap(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(cm *corev1.ConfigMap)
		want   []wantErr
	}{
		{"valid", func(*corev1.ConfigMap) {}, nil},
		{"empty", func(cm *corev1.ConfigMap) { cm.Data, cm.BinaryData = nil, nil }, nil},
		{"key with slash", func(cm *corev1.ConfigMap) { cm.Data["conf/default"] = "" }, []wantErr{invalid("data[conf/default]")}},
		{"key is ..", func(cm *corev1.ConfigMap) { cm.Data[".."] = "" }, []wantErr{invalid("data[..]")}},
		{"binary key invalid", func(cm *corev1.ConfigMap) { cm.BinaryData["a b"] = nil }, []wantErr{invalid("binaryData[a b]")}},
		{"key in both", func(cm *corev1.ConfigMap) { cm.Data["favicon.ico"] = "x" }, []wantErr{invalid("data[favicon.ico]")}},
		{"too large", func(cm *corev1.ConfigMap) { cm.Data["big"] = strings.Repeat("x", 1024*1024) }, []wantErr{tooLong("data")}},
		{"exactly 1 MiB", func(cm *corev1.ConfigMap) {
			cm.Data = map[string]string{"big": strings.Repeat("x", 1024*1024)}
			cm.BinaryData = nil
		}, nil},
		{"name invalid", func(cm *corev1.ConfigMap) { cm.Name = "Web Config" }, []wantErr{invalid("metadata.name")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm := validConfigMap()
			Default(cm)
			tc.mutate(cm)
			checkErrs(t, Validate(cm, true), tc.want...)
		})
	}
}

func TestValidate_Secret(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *corev1.Secret)
		want   []wantErr
	}{
		{"valid tls", func(*corev1.Secret) {}, nil},
		{"tls needs cert", func(s *corev1.Secret) { delete(s.Data, corev1.TLSCertKey) }, []wantErr{required("data[tls.crt]")}},
		{"tls needs key", func(s *corev1.Secret) { delete(s.Data, corev1.TLSPrivateKeyKey) }, []wantErr{required("data[tls.key]")}},
		{"tls needs both", func(s *corev1.Secret) { s.Data = nil }, []wantErr{required("data[tls.crt]"), required("data[tls.key]")}},
		{"opaque", func(s *corev1.Secret) {
			s.Type, s.Data = corev1.SecretTypeOpaque, map[string][]byte{"password": []byte("x")}
		}, nil},
		{"custom type", func(s *corev1.Secret) { s.Type = "example.com/token" }, nil},
		{"dockerconfigjson required", func(s *corev1.Secret) { s.Type = corev1.SecretTypeDockerConfigJson },
			[]wantErr{required("data[.dockerconfigjson]")}},
		{"dockerconfigjson must be JSON", func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte("{not json")}
		}, []wantErr{invalid("data[.dockerconfigjson]")}},
		{"dockerconfigjson", func(s *corev1.Secret) {
			s.Type = corev1.SecretTypeDockerConfigJson
			s.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com":{"auth":"dTpw"}}}`)}
		}, nil},
		{"basic auth needs a field", func(s *corev1.Secret) { s.Type, s.Data = corev1.SecretTypeBasicAuth, nil },
			[]wantErr{required("data[username]"), required("data[password]")}},
		{"ssh auth needs key", func(s *corev1.Secret) { s.Type, s.Data = corev1.SecretTypeSSHAuth, nil },
			[]wantErr{required("data[ssh-privatekey]")}},
		{"service account token needs annotation", func(s *corev1.Secret) { s.Type, s.Data = corev1.SecretTypeServiceAccountToken, nil },
			[]wantErr{required("metadata.annotations[kubernetes.io/service-account.name]")}},
		{"key invalid", func(s *corev1.Secret) { s.Data["tls crt"] = nil }, []wantErr{invalid("data[tls crt]")}},
		{"too large", func(s *corev1.Secret) { s.Data["big"] = make([]byte, 1024*1024) }, []wantErr{tooLong("data")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSecret()
			Default(s)
			tc.mutate(s)
			checkErrs(t, Validate(s, true), tc.want...)
		})
	}
}

// TestValidate_secretNotDefaulted covers a Secret validated without
// Default: stringData then still counts.
func TestValidate_secretNotDefaulted(t *testing.T) {
	s := validSecret()
	s.Data = map[string][]byte{corev1.TLSPrivateKeyKey: []byte("k")}
	s.StringData = map[string]string{corev1.TLSCertKey: "c"}
	checkErrs(t, Validate(s, true))
}
