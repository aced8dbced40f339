package admission

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// secretCanary is a Secret value no error may show. It has no '-', '_'
// or '.', which the key rules quote on their own.
const secretCanary = "Zq7KilnCanary9x"

// TestValidate_Secret_valuesNotEchoed checks that no validation error of
// an invalid Secret shows any of its values, not even the one character a
// JSON syntax error quotes (RELIABILITY promise 15, CVE-2025-23216).
func TestValidate_Secret_valuesNotEchoed(t *testing.T) {
	immutable := true
	tests := []struct {
		name   string
		secret *corev1.Secret
		// old, if set, makes the case an update of old to secret.
		old  *corev1.Secret
		want []wantErr
	}{
		{"invalid key, canary value", &corev1.Secret{Data: map[string][]byte{"bad key!": []byte(secretCanary)}},
			nil, []wantErr{invalid("data[bad key!]")}},
		{"invalid stringData key, canary value", &corev1.Secret{StringData: map[string]string{"bad key!": secretCanary}},
			nil, []wantErr{invalid("stringData[bad key!]")}},
		{"dockerconfigjson is the canary", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(secretCanary)}}, nil, []wantErr{invalid("data[.dockerconfigjson]")}},
		{"dockerconfigjson holds the canary", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			StringData: map[string]string{corev1.DockerConfigJsonKey: `{"auths": ` + secretCanary + `}`}}, nil, []wantErr{invalid("data[.dockerconfigjson]")}},
		{"dockerconfigjson with trailing canary", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{}` + secretCanary)}}, nil, []wantErr{invalid("data[.dockerconfigjson]")}},
		{"dockerconfigjson with a bad escape", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"a": "\` + secretCanary + `"}`)}}, nil, []wantErr{invalid("data[.dockerconfigjson]")}},
		{"dockerconfigjson is a JSON string", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`"` + secretCanary + `"`)}}, nil, []wantErr{invalid("data[.dockerconfigjson]")}},
		{"dockercfg is unterminated", &corev1.Secret{Type: corev1.SecretTypeDockercfg,
			Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"` + secretCanary)}}, nil, []wantErr{invalid("data[.dockercfg]")}},
		{"too large", &corev1.Secret{Data: map[string][]byte{"big": []byte(strings.Repeat(secretCanary, corev1.MaxSecretSize/len(secretCanary)+1))}},
			nil, []wantErr{tooLong("data")}},
		{"tls without cert", &corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSPrivateKeyKey: []byte(secretCanary)}},
			nil, []wantErr{required("data[tls.crt]")}},
		{"immutable contents changed",
			&corev1.Secret{Immutable: &immutable, Data: map[string][]byte{"password": []byte(secretCanary + "2")}},
			&corev1.Secret{Immutable: &immutable, Data: map[string][]byte{"password": []byte(secretCanary)}},
			[]wantErr{forbidden("data")}},
		{"made mutable with stringData",
			&corev1.Secret{StringData: map[string]string{"password": secretCanary}},
			&corev1.Secret{Immutable: &immutable, Data: map[string][]byte{"password": []byte(secretCanary)}},
			[]wantErr{forbidden("immutable"), forbidden("data")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.secret.ObjectMeta = metav1.ObjectMeta{Name: "creds", Namespace: "default"}
			var errs field.ErrorList
			if tc.old == nil {
				errs = Validate(tc.secret, true)
			} else {
				tc.old.ObjectMeta = metav1.ObjectMeta{Name: "creds", Namespace: "default", ResourceVersion: "1"}
				tc.secret.ResourceVersion = "1"
				errs = ValidateUpdate(tc.secret, tc.old, true)
			}
			checkErrs(t, errs, tc.want...)
			for _, e := range errs {
				for _, text := range []string{e.Error(), fmt.Sprint(e.BadValue), e.Detail} {
					if strings.Contains(text, secretCanary) {
						t.Errorf("error shows the value: %s", text)
					}
					for _, c := range secretCanary {
						if strings.Contains(text, "'"+string(c)+"'") {
							t.Errorf("error quotes a character of the value (%q): %s", c, text)
						}
					}
				}
			}
		})
	}
}
