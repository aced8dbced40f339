package admission

import (
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxDataSize bounds the data of a ConfigMap or Secret, so that one object
// cannot take over etcd's request size limit.
const maxDataSize = corev1.MaxSecretSize

// redacted stands in for secret contents in error values.
const redacted = "<secret contents redacted>"

const msgImmutableData = "field is immutable when `immutable` is set"

func validateConfigMap(cm *corev1.ConfigMap, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&cm.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	dataPath := field.NewPath("data")
	binaryPath := field.NewPath("binaryData")
	size := 0
	for _, k := range sortedKeys(cm.Data) {
		allErrs = append(allErrs, validateMessages(dataPath.Key(k), k, utilvalidation.IsConfigMapKey(k))...)
		if _, ok := cm.BinaryData[k]; ok {
			allErrs = append(allErrs, field.Invalid(dataPath.Key(k), k, "duplicate of key present in binaryData"))
		}
		size += len(cm.Data[k])
	}
	for _, k := range sortedKeys(cm.BinaryData) {
		allErrs = append(allErrs, validateMessages(binaryPath.Key(k), k, utilvalidation.IsConfigMapKey(k))...)
		size += len(cm.BinaryData[k])
	}
	if size > maxDataSize {
		allErrs = append(allErrs, field.TooLong(dataPath, "", maxDataSize))
	}
	return allErrs
}

// validateConfigMapUpdate freezes an immutable ConfigMap's contents, and
// its immutability.
func validateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	if old.Immutable == nil || !*old.Immutable {
		return nil
	}
	var allErrs field.ErrorList
	if cm.Immutable == nil || !*cm.Immutable {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("immutable"), msgImmutableData))
	}
	if !apiequality.Semantic.DeepEqual(cm.Data, old.Data) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("data"), msgImmutableData))
	}
	if !apiequality.Semantic.DeepEqual(cm.BinaryData, old.BinaryData) {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("binaryData"), msgImmutableData))
	}
	return allErrs
}

func validateSecret(s *corev1.Secret, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&s.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	dataPath := field.NewPath("data")
	size := 0
	for _, k := range sortedKeys(s.Data) {
		allErrs = append(allErrs, validateMessages(dataPath.Key(k), k, utilvalidation.IsConfigMapKey(k))...)
		size += len(s.Data[k])
	}
	// stringData is normally folded into data by Default; count it in case
	// it was not.
	for _, k := range sortedKeys(s.StringData) {
		allErrs = append(allErrs, validateMessages(field.NewPath("stringData").Key(k), k, utilvalidation.IsConfigMapKey(k))...)
		size += len(s.StringData[k])
	}
	if size > maxDataSize {
		allErrs = append(allErrs, field.TooLong(dataPath, "", maxDataSize))
	}
	has := func(key string) bool {
		_, ok := s.Data[key]
		if !ok {
			_, ok = s.StringData[key]
		}
		return ok
	}
	requireKey := func(key string) {
		if !has(key) {
			allErrs = append(allErrs, field.Required(dataPath.Key(key), ""))
		}
	}
	requireJSON := func(key string) {
		if !has(key) {
			requireKey(key)
			return
		}
		v, ok := s.Data[key]
		if sv, isString := s.StringData[key]; isString {
			v, ok = []byte(sv), true
		}
		if ok {
			if err := json.Unmarshal(v, &map[string]any{}); err != nil {
				allErrs = append(allErrs, field.Invalid(dataPath.Key(key), redacted, secretJSONError(err)))
			}
		}
	}

	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		// The token itself is filled in later by a controller.
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			allErrs = append(allErrs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		requireJSON(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		requireJSON(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		// Either may be empty, but one must be there.
		if !has(corev1.BasicAuthUsernameKey) && !has(corev1.BasicAuthPasswordKey) {
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""))
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(s.Data[corev1.SSHAuthPrivateKey]) == 0 && s.StringData[corev1.SSHAuthPrivateKey] == "" {
			allErrs = append(allErrs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		requireKey(corev1.TLSCertKey)
		requireKey(corev1.TLSPrivateKeyKey)
	}
	return allErrs
}

// secretJSONError describes why a Secret's value is not a JSON object
// without the value: a JSON syntax error quotes the character it failed
// on, a character of the secret (kube-apiserver echoes it; CVE-2025-23216
// is the kind of leak this avoids). Type errors name only JSON kinds.
func secretJSONError(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("must be a JSON object: invalid JSON at byte %d", se.Offset)
	}
	return "must be a JSON object"
}

// validateSecretUpdate keeps a Secret's type, and an immutable Secret's
// contents and immutability.
func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateImmutableField(s.Type, old.Type, field.NewPath("type"))
	if old.Immutable == nil || !*old.Immutable {
		return allErrs
	}
	if s.Immutable == nil || !*s.Immutable {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("immutable"), msgImmutableData))
	}
	if !apiequality.Semantic.DeepEqual(s.Data, old.Data) || len(s.StringData) > 0 {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("data"), msgImmutableData))
	}
	return allErrs
}
