package admission

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// maxCronJobNameLength leaves room for the 11-character suffix the CronJob
// controller appends to name its Jobs, which must be DNS labels.
const maxCronJobNameLength = utilvalidation.DNS1035LabelMaxLength - 11

var (
	supportedJobRestartPolicies = []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}
	supportedCompletionModes    = []batchv1.CompletionMode{batchv1.NonIndexedCompletion, batchv1.IndexedCompletion}
	supportedReplacementPolicy  = []batchv1.PodReplacementPolicy{batchv1.TerminatingOrFailed, batchv1.Failed}
	supportedConcurrency        = []batchv1.ConcurrencyPolicy{batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent}
	supportedRetentionPolicies  = []appsv1.PersistentVolumeClaimRetentionPolicyType{
		appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
	}
)

func validateDeployment(d *appsv1.Deployment, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&d.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &d.Spec
	allErrs = append(allErrs, validateReplicas(spec.Replicas, specPath)...)
	allErrs = append(allErrs, validateSelectorMatchesTemplate(spec.Selector, spec.Template.Labels, "deployment", specPath)...)
	allErrs = append(allErrs, validateReplicaTemplate(&spec.Template, specPath.Child("template"), "ReplicaSet", podOpts{})...)
	allErrs = append(allErrs, validateDeploymentStrategy(&spec.Strategy, specPath.Child("strategy"))...)
	allErrs = append(allErrs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	if p := spec.ProgressDeadlineSeconds; p != nil {
		allErrs = append(allErrs, validateNonnegative(int64(*p), specPath.Child("progressDeadlineSeconds"))...)
		if *p <= spec.MinReadySeconds {
			allErrs = append(allErrs, field.Invalid(specPath.Child("progressDeadlineSeconds"), *p, "must be greater than minReadySeconds"))
		}
	}
	return allErrs
}

func validateDeploymentStrategy(s *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	switch s.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if s.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(fldPath.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ruPath := fldPath.Child("rollingUpdate")
		if s.RollingUpdate == nil {
			return field.ErrorList{field.Required(ruPath, "this should be defaulted and never be nil")}
		}
		maxUnavailable := derefIntOrString(s.RollingUpdate.MaxUnavailable)
		maxSurge := derefIntOrString(s.RollingUpdate.MaxSurge)
		allErrs := validatePositiveIntOrPercent(maxUnavailable, ruPath.Child("maxUnavailable"))
		allErrs = append(allErrs, validatePositiveIntOrPercent(maxSurge, ruPath.Child("maxSurge"))...)
		if intOrPercentValue(maxUnavailable) == 0 && intOrPercentValue(maxSurge) == 0 {
			allErrs = append(allErrs, field.Invalid(ruPath.Child("maxUnavailable"), maxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		return append(allErrs, validateNotMoreThan100Percent(maxUnavailable, ruPath.Child("maxUnavailable"))...)
	default:
		return field.ErrorList{field.NotSupported(fldPath, s.Type, []appsv1.DeploymentStrategyType{
			appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType,
		})}
	}
	return nil
}

func validateReplicaSet(rs *appsv1.ReplicaSet, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&rs.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &rs.Spec
	allErrs = append(allErrs, validateReplicas(spec.Replicas, specPath)...)
	allErrs = append(allErrs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	allErrs = append(allErrs, validateSelectorMatchesTemplate(spec.Selector, spec.Template.Labels, "replicaset", specPath)...)
	return append(allErrs, validateReplicaTemplate(&spec.Template, specPath.Child("template"), "ReplicaSet", podOpts{})...)
}

func validateDaemonSet(ds *appsv1.DaemonSet, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&ds.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &ds.Spec
	allErrs = append(allErrs, validateSelectorMatchesTemplate(spec.Selector, spec.Template.Labels, "daemonset", specPath)...)
	allErrs = append(allErrs, validateReplicaTemplate(&spec.Template, specPath.Child("template"), "DaemonSet", podOpts{})...)
	allErrs = append(allErrs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)

	usPath := specPath.Child("updateStrategy")
	switch s := spec.UpdateStrategy; s.Type {
	case appsv1.OnDeleteDaemonSetStrategyType:
	case appsv1.RollingUpdateDaemonSetStrategyType:
		ruPath := usPath.Child("rollingUpdate")
		if s.RollingUpdate == nil {
			allErrs = append(allErrs, field.Required(ruPath, ""))
			break
		}
		maxUnavailable := derefIntOrString(s.RollingUpdate.MaxUnavailable)
		maxSurge := derefIntOrString(s.RollingUpdate.MaxSurge)
		allErrs = append(allErrs, validatePositiveIntOrPercent(maxUnavailable, ruPath.Child("maxUnavailable"))...)
		allErrs = append(allErrs, validatePositiveIntOrPercent(maxSurge, ruPath.Child("maxSurge"))...)
		allErrs = append(allErrs, validateNotMoreThan100Percent(maxUnavailable, ruPath.Child("maxUnavailable"))...)
		allErrs = append(allErrs, validateNotMoreThan100Percent(maxSurge, ruPath.Child("maxSurge"))...)
		// Exactly one of the two drives a DaemonSet rollout.
		hasUnavailable, hasSurge := intOrPercentValue(maxUnavailable) != 0, intOrPercentValue(maxSurge) != 0
		switch {
		case hasUnavailable && hasSurge:
			allErrs = append(allErrs, field.Invalid(ruPath.Child("maxSurge"), maxSurge, "may not be set when maxUnavailable is non-zero"))
		case !hasUnavailable && !hasSurge:
			allErrs = append(allErrs, field.Required(ruPath.Child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
		}
	default:
		allErrs = append(allErrs, field.NotSupported(usPath, s.Type, []appsv1.DaemonSetUpdateStrategyType{
			appsv1.RollingUpdateDaemonSetStrategyType, appsv1.OnDeleteDaemonSetStrategyType,
		}))
	}
	return allErrs
}

func validateStatefulSet(ss *appsv1.StatefulSet, namespaced bool) field.ErrorList {
	// StatefulSet names become pod hostnames, so they must be DNS labels.
	allErrs := validateObjectMeta(&ss.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSLabel)
	specPath := field.NewPath("spec")
	spec := &ss.Spec

	switch spec.PodManagementPolicy {
	case "":
		allErrs = append(allErrs, field.Required(specPath.Child("podManagementPolicy"), ""))
	case appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		allErrs = append(allErrs, field.Invalid(specPath.Child("podManagementPolicy"), spec.PodManagementPolicy, "must be 'OrderedReady' or 'Parallel'"))
	}

	usPath := specPath.Child("updateStrategy")
	switch s := spec.UpdateStrategy; s.Type {
	case "":
		allErrs = append(allErrs, field.Required(usPath, ""))
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.RollingUpdate != nil {
			allErrs = append(allErrs, field.Invalid(usPath.Child("rollingUpdate"), s.RollingUpdate, "only allowed for updateStrategy 'RollingUpdate'"))
		}
	case appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := s.RollingUpdate; ru != nil {
			ruPath := usPath.Child("rollingUpdate")
			allErrs = append(allErrs, validateOptionalNonnegative(ru.Partition, ruPath.Child("partition"))...)
			if ru.MaxUnavailable != nil {
				mu := *ru.MaxUnavailable
				allErrs = append(allErrs, validatePositiveIntOrPercent(mu, ruPath.Child("maxUnavailable"))...)
				if intOrPercentValue(mu) == 0 {
					allErrs = append(allErrs, field.Invalid(ruPath.Child("maxUnavailable"), mu, "cannot be 0"))
				}
				allErrs = append(allErrs, validateNotMoreThan100Percent(mu, ruPath.Child("maxUnavailable"))...)
			}
		}
	default:
		allErrs = append(allErrs, field.Invalid(usPath, s.Type, "must be 'RollingUpdate' or 'OnDelete'"))
	}

	if p := spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		pPath := specPath.Child("persistentVolumeClaimRetentionPolicy")
		if !slices.Contains(supportedRetentionPolicies, p.WhenDeleted) {
			allErrs = append(allErrs, field.NotSupported(pPath.Child("whenDeleted"), p.WhenDeleted, supportedRetentionPolicies))
		}
		if !slices.Contains(supportedRetentionPolicies, p.WhenScaled) {
			allErrs = append(allErrs, field.NotSupported(pPath.Child("whenScaled"), p.WhenScaled, supportedRetentionPolicies))
		}
	}
	allErrs = append(allErrs, validateReplicas(spec.Replicas, specPath)...)
	allErrs = append(allErrs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.RevisionHistoryLimit, specPath.Child("revisionHistoryLimit"))...)
	if spec.Ordinals != nil {
		allErrs = append(allErrs, validateNonnegative(int64(spec.Ordinals.Start), specPath.Child("ordinals", "start"))...)
	}
	allErrs = append(allErrs, validateSelectorMatchesTemplate(spec.Selector, spec.Template.Labels, "statefulset", specPath)...)

	// Pods mount their claims by the claim template's name.
	var claimNames []string
	vctPath := specPath.Child("volumeClaimTemplates")
	for i := range spec.VolumeClaimTemplates {
		t := &spec.VolumeClaimTemplates[i]
		idxPath := vctPath.Index(i)
		if t.Name == "" {
			allErrs = append(allErrs, field.Required(idxPath.Child("metadata", "name"), ""))
		} else {
			allErrs = append(allErrs, validateDNS1123Label(t.Name, idxPath.Child("metadata", "name"))...)
			claimNames = append(claimNames, t.Name)
		}
		allErrs = append(allErrs, validatePersistentVolumeClaimSpec(&t.Spec, idxPath.Child("spec"))...)
	}
	return append(allErrs, validateReplicaTemplate(&spec.Template, specPath.Child("template"), "StatefulSet", podOpts{extraVolumes: claimNames})...)
}

// validateStatefulSetUpdate allows only replicas, ordinals, template,
// updateStrategy, persistentVolumeClaimRetentionPolicy and minReadySeconds
// to change. The selector is reported on its own, as for the other apps/v1
// workloads.
func validateStatefulSetUpdate(ss, old *appsv1.StatefulSet) field.ErrorList {
	allErrs := validateSelectorUpdate(ss.Spec.Selector, old.Spec.Selector)
	spec := ss.Spec.DeepCopy()
	spec.Replicas = old.Spec.Replicas
	spec.Ordinals = old.Spec.Ordinals
	spec.Template = old.Spec.Template
	spec.UpdateStrategy = old.Spec.UpdateStrategy
	spec.PersistentVolumeClaimRetentionPolicy = old.Spec.PersistentVolumeClaimRetentionPolicy
	spec.MinReadySeconds = old.Spec.MinReadySeconds
	spec.Selector = old.Spec.Selector
	if changed := changedFields(*spec, old.Spec); len(changed) > 0 {
		allErrs = append(allErrs, field.Forbidden(field.NewPath("spec"), "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden (changed: "+strings.Join(changed, ", ")+")"))
	}
	return allErrs
}

func validateReplicationController(rc *corev1.ReplicationController, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&rc.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &rc.Spec
	allErrs = append(allErrs, validateReplicas(spec.Replicas, specPath)...)
	allErrs = append(allErrs, validateNonnegative(int64(spec.MinReadySeconds), specPath.Child("minReadySeconds"))...)
	if len(spec.Selector) == 0 {
		allErrs = append(allErrs, field.Required(specPath.Child("selector"), ""))
	} else {
		allErrs = append(allErrs, validateLabels(spec.Selector, specPath.Child("selector"))...)
	}
	tPath := specPath.Child("template")
	if spec.Template == nil {
		return append(allErrs, field.Required(tPath, ""))
	}
	if len(spec.Selector) > 0 && !labels.SelectorFromSet(spec.Selector).Matches(labels.Set(spec.Template.Labels)) {
		allErrs = append(allErrs, field.Invalid(tPath.Child("metadata", "labels"), spec.Template.Labels, msgSelectorMismatch))
	}
	return append(allErrs, validateReplicaTemplate(spec.Template, tPath, "ReplicationController", podOpts{})...)
}

func validatePodTemplate(pt *corev1.PodTemplate, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&pt.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	return append(allErrs, validatePodTemplateSpec(&pt.Template, field.NewPath("template"), podOpts{})...)
}

func validateJob(job *batchv1.Job, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&job.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	specPath := field.NewPath("spec")
	spec := &job.Spec
	allErrs = append(allErrs, validateJobSpec(spec, specPath)...)
	selPath := specPath.Child("selector")
	if spec.Selector == nil {
		// Without a manual selector, one is generated from the uid (see
		// generateJobSelector), which may happen after validation here.
		if spec.ManualSelector != nil && *spec.ManualSelector {
			allErrs = append(allErrs, field.Required(selPath, ""))
		}
		return allErrs
	}
	selErrs := metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, selPath)
	allErrs = append(allErrs, selErrs...)
	if len(selErrs) == 0 {
		// Whether manual or generated, the selector must match the pods
		// the Job makes.
		if sel, err := metav1.LabelSelectorAsSelector(spec.Selector); err != nil {
			allErrs = append(allErrs, field.Invalid(selPath, spec.Selector, "invalid label selector"))
		} else if !sel.Matches(labels.Set(spec.Template.Labels)) {
			allErrs = append(allErrs, field.Invalid(specPath.Child("template", "metadata", "labels"), spec.Template.Labels, msgSelectorMismatch))
		}
	}
	return allErrs
}

// validateJobSpec holds the checks shared by Jobs and CronJob job
// templates.
func validateJobSpec(spec *batchv1.JobSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	allErrs = append(allErrs, validateOptionalNonnegative(spec.Parallelism, fldPath.Child("parallelism"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.Completions, fldPath.Child("completions"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.BackoffLimit, fldPath.Child("backoffLimit"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.BackoffLimitPerIndex, fldPath.Child("backoffLimitPerIndex"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.MaxFailedIndexes, fldPath.Child("maxFailedIndexes"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.TTLSecondsAfterFinished, fldPath.Child("ttlSecondsAfterFinished"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.ActiveDeadlineSeconds, fldPath.Child("activeDeadlineSeconds"))...)
	if m := spec.CompletionMode; m != nil {
		if !slices.Contains(supportedCompletionModes, *m) {
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("completionMode"), *m, supportedCompletionModes))
		}
		if *m == batchv1.IndexedCompletion && spec.Completions == nil {
			allErrs = append(allErrs, field.Required(fldPath.Child("completions"), "when completion mode is Indexed"))
		}
	}
	if p := spec.PodReplacementPolicy; p != nil {
		switch {
		case !slices.Contains(supportedReplacementPolicy, *p):
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *p, supportedReplacementPolicy))
		case spec.PodFailurePolicy != nil && *p != batchv1.Failed:
			allErrs = append(allErrs, field.NotSupported(fldPath.Child("podReplacementPolicy"), *p, []batchv1.PodReplacementPolicy{batchv1.Failed}))
		}
	}
	tPath := fldPath.Child("template")
	allErrs = append(allErrs, validatePodTemplateSpec(&spec.Template, tPath, podOpts{})...)
	// An empty restartPolicy is already reported as required.
	if rp := spec.Template.Spec.RestartPolicy; rp != "" && !slices.Contains(supportedJobRestartPolicies, rp) {
		allErrs = append(allErrs, field.NotSupported(tPath.Child("spec", "restartPolicy"), rp, supportedJobRestartPolicies))
	}
	return allErrs
}

// validateJobUpdate keeps the pods a Job makes, and how many, fixed.
func validateJobUpdate(job, old *batchv1.Job) field.ErrorList {
	specPath := field.NewPath("spec")
	allErrs := validateSelectorUpdate(job.Spec.Selector, old.Spec.Selector)
	if !apiequality.Semantic.DeepEqual(job.Spec.Template, old.Spec.Template) {
		// The template is too large to echo back.
		allErrs = append(allErrs, field.Invalid(specPath.Child("template"), field.OmitValueType{}, msgFieldImmutable))
	}
	allErrs = append(allErrs, apimachineryvalidation.ValidateImmutableField(job.Spec.CompletionMode, old.Spec.CompletionMode, specPath.Child("completionMode"))...)
	if old.Spec.CompletionMode == nil || *old.Spec.CompletionMode != batchv1.IndexedCompletion {
		allErrs = append(allErrs, apimachineryvalidation.ValidateImmutableField(job.Spec.Completions, old.Spec.Completions, specPath.Child("completions"))...)
	}
	return allErrs
}

func validateCronJob(cj *batchv1.CronJob, namespaced bool) field.ErrorList {
	allErrs := validateObjectMeta(&cj.ObjectMeta, namespaced, apimachineryvalidation.NameIsDNSSubdomain)
	if len(cj.Name) > maxCronJobNameLength {
		allErrs = append(allErrs, field.Invalid(field.NewPath("metadata", "name"), cj.Name, fmt.Sprintf("must be no more than %d characters", maxCronJobNameLength)))
	}
	specPath := field.NewPath("spec")
	spec := &cj.Spec
	schedPath := specPath.Child("schedule")
	if spec.Schedule == "" {
		allErrs = append(allErrs, field.Required(schedPath, ""))
	} else {
		if err := parseSchedule(spec.Schedule); err != nil {
			allErrs = append(allErrs, field.Invalid(schedPath, spec.Schedule, err.Error()))
		}
		if strings.Contains(spec.Schedule, "TZ") {
			allErrs = append(allErrs, field.Invalid(schedPath, spec.Schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
		}
	}
	allErrs = append(allErrs, validateTimeZone(spec.TimeZone, specPath.Child("timeZone"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.StartingDeadlineSeconds, specPath.Child("startingDeadlineSeconds"))...)
	switch p := spec.ConcurrencyPolicy; {
	case p == "":
		allErrs = append(allErrs, field.Required(specPath.Child("concurrencyPolicy"), ""))
	case !slices.Contains(supportedConcurrency, p):
		allErrs = append(allErrs, field.NotSupported(specPath.Child("concurrencyPolicy"), p, supportedConcurrency))
	}
	allErrs = append(allErrs, validateOptionalNonnegative(spec.SuccessfulJobsHistoryLimit, specPath.Child("successfulJobsHistoryLimit"))...)
	allErrs = append(allErrs, validateOptionalNonnegative(spec.FailedJobsHistoryLimit, specPath.Child("failedJobsHistoryLimit"))...)

	jtPath := specPath.Child("jobTemplate")
	jt := &spec.JobTemplate
	allErrs = append(allErrs, validateLabels(jt.Labels, jtPath.Child("metadata", "labels"))...)
	allErrs = append(allErrs, validateAnnotations(jt.Annotations, jtPath.Child("metadata", "annotations"))...)
	allErrs = append(allErrs, validateJobSpec(&jt.Spec, jtPath.Child("spec"))...)
	// Each Job the CronJob makes gets its own generated selector.
	if jt.Spec.Selector != nil {
		allErrs = append(allErrs, field.Invalid(jtPath.Child("spec", "selector"), jt.Spec.Selector, "`selector` will be auto-generated"))
	}
	if m := jt.Spec.ManualSelector; m != nil && *m {
		allErrs = append(allErrs, field.NotSupported(jtPath.Child("spec", "manualSelector"), *m, []string{"nil", "false"}))
	}
	return allErrs
}

// validateSelectorMatchesTemplate checks an apps/v1 workload's selector: it
// is required, must not be empty, and must select the template's pods.
func validateSelectorMatchesTemplate(selector *metav1.LabelSelector, templateLabels map[string]string, kind string, specPath *field.Path) field.ErrorList {
	selPath := specPath.Child("selector")
	if selector == nil {
		return field.ErrorList{field.Required(selPath, "")}
	}
	allErrs := metav1validation.ValidateLabelSelector(selector, metav1validation.LabelSelectorValidationOptions{}, selPath)
	if len(selector.MatchLabels)+len(selector.MatchExpressions) == 0 {
		return append(allErrs, field.Invalid(selPath, selector, "empty selector is invalid for "+kind))
	}
	if len(allErrs) > 0 {
		return allErrs
	}
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return append(allErrs, field.Invalid(selPath, selector, "invalid label selector"))
	}
	if !sel.Matches(labels.Set(templateLabels)) {
		allErrs = append(allErrs, field.Invalid(specPath.Child("template", "metadata", "labels"), templateLabels, msgSelectorMismatch))
	}
	return allErrs
}

// validateReplicaTemplate checks the template of a controller whose pods
// run until deleted: they must restart always and have no deadline.
func validateReplicaTemplate(t *corev1.PodTemplateSpec, tPath *field.Path, kind string, opts podOpts) field.ErrorList {
	allErrs := validatePodTemplateSpec(t, tPath, opts)
	// An empty restartPolicy is already reported as required.
	if rp := t.Spec.RestartPolicy; rp != "" && rp != corev1.RestartPolicyAlways {
		allErrs = append(allErrs, field.NotSupported(tPath.Child("spec", "restartPolicy"), rp, []corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(tPath.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in "+kind+" is not Supported"))
	}
	return allErrs
}

func validateReplicas(replicas *int32, specPath *field.Path) field.ErrorList {
	return validateOptionalNonnegative(replicas, specPath.Child("replicas"))
}

func validateOptionalNonnegative[T int32 | int64](v *T, fldPath *field.Path) field.ErrorList {
	if v == nil {
		return nil
	}
	return validateNonnegative(int64(*v), fldPath)
}

// derefIntOrString reads an optional int-or-percent; unset reads as 0,
// as it does in kube's internal types.
func derefIntOrString(v *intstr.IntOrString) intstr.IntOrString {
	if v == nil {
		return intstr.FromInt32(0)
	}
	return *v
}

func validatePositiveIntOrPercent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	switch v.Type {
	case intstr.String:
		return validateMessages(fldPath, v.StrVal, utilvalidation.IsValidPercent(v.StrVal))
	case intstr.Int:
		return validateNonnegative(int64(v.IntVal), fldPath)
	}
	return field.ErrorList{field.Invalid(fldPath, v, "must be an integer or percentage (e.g '5%')")}
}

// percentValue returns the number in a valid "NN%" string.
func percentValue(v intstr.IntOrString) (int, bool) {
	if v.Type != intstr.String || len(utilvalidation.IsValidPercent(v.StrVal)) > 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%"))
	return n, err == nil
}

// intOrPercentValue is the number in an int or a percentage; an invalid
// string counts as 0 and is reported elsewhere.
func intOrPercentValue(v intstr.IntOrString) int {
	if n, ok := percentValue(v); ok {
		return n
	}
	if v.Type == intstr.Int {
		return int(v.IntVal)
	}
	return 0
}

func validateNotMoreThan100Percent(v intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	if n, ok := percentValue(v); ok && n > 100 {
		return field.ErrorList{field.Invalid(fldPath, v.StrVal, "must not be greater than 100%")}
	}
	return nil
}
