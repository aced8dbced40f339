package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// Actions an apply reports.
const (
	ActionCreated    = "created"
	ActionConfigured = "configured"
	ActionUnchanged  = "unchanged"
)

// fieldManager names kiln in the API's requests.
const fieldManager = "kiln"

// applier writes rendered objects through the API: create, or a three-way
// patch from the last-applied configuration, so fields that others own
// (status, clusterIP, nodeName, what controllers set) are left alone and an
// unchanged object is not written at all.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	source string
}

// client returns the dynamic client for obj's resource and namespace.
func (a *applier) client(u *unstructured.Unstructured) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(u.GetNamespace()), m, nil
	}
	return a.dyn.Resource(m.Resource), m, nil
}

// desired is the object as kiln writes it, and its last-applied
// configuration (without the revision, which changes every commit and
// would otherwise make every object look changed).
func (a *applier) desired(o Object, revision string) (*unstructured.Unstructured, string, error) {
	u := o.Obj.DeepCopy()
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelSource] = a.source
	u.SetLabels(labels)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationPath] = o.Path
	delete(ann, AnnotationRevision)
	delete(ann, AnnotationLastApplied)
	u.SetAnnotations(ann)
	cfg := u
	if isSecret(u) {
		cfg = hashSecretValues(u)
	}
	last, err := json.Marshal(cfg.Object)
	if err != nil {
		return nil, "", err
	}
	ann[AnnotationLastApplied] = string(last)
	ann[AnnotationRevision] = revision
	u.SetAnnotations(ann)
	return u, string(last), nil
}

func isSecret(u *unstructured.Unstructured) bool {
	return u.GetAPIVersion() == "v1" && u.GetKind() == "Secret"
}

// hashSecretValues returns a copy whose data and stringData values are
// hashes: enough for the three-way patch to see which keys were removed,
// without putting secret values into an annotation.
func hashSecretValues(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	for _, f := range []string{"data", "stringData"} {
		m, ok := c.Object[f].(map[string]any)
		if !ok {
			continue
		}
		for k, v := range m {
			sum := sha256.Sum256([]byte(fmt.Sprint(v)))
			m[k] = "sha256:" + hex.EncodeToString(sum[:8])
		}
	}
	return c
}

// apply creates or patches one object. With dry it asks the server to
// validate only (dryRun=All). It returns what happened and the live object.
func (a *applier) apply(ctx context.Context, o Object, revision string, dry bool) (string, *unstructured.Unstructured, error) {
	want, last, err := a.desired(o, revision)
	if err != nil {
		return "", nil, err
	}
	ri, _, err := a.client(want)
	if err != nil {
		return "", nil, err
	}
	var dryRun []string
	if dry {
		dryRun = []string{metav1.DryRunAll}
	}
	live, err := ri.Get(ctx, want.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		out, err := ri.Create(ctx, want, metav1.CreateOptions{DryRun: dryRun, FieldManager: fieldManager, FieldValidation: "Strict"})
		if err != nil {
			return "", nil, err
		}
		return ActionCreated, out, nil
	}
	if err != nil {
		return "", nil, err
	}
	patchType, patch, err := threeWay(want, live, last)
	if err != nil {
		return "", nil, err
	}
	if patch == nil {
		return ActionUnchanged, live, nil
	}
	out, err := ri.Patch(ctx, want.GetName(), patchType, patch, metav1.PatchOptions{DryRun: dryRun, FieldManager: fieldManager, FieldValidation: "Strict"})
	if err != nil {
		return "", nil, err
	}
	return ActionConfigured, out, nil
}

// applyAbsent is apply for an object believed not to exist (its dry run
// found none, or its namespace is new): it creates without reading first,
// and falls back to apply if the object exists after all.
func (a *applier) applyAbsent(ctx context.Context, o Object, revision string, dry bool) (string, *unstructured.Unstructured, error) {
	want, _, err := a.desired(o, revision)
	if err != nil {
		return "", nil, err
	}
	ri, _, err := a.client(want)
	if err != nil {
		return "", nil, err
	}
	var dryRun []string
	if dry {
		dryRun = []string{metav1.DryRunAll}
	}
	out, err := ri.Create(ctx, want, metav1.CreateOptions{DryRun: dryRun, FieldManager: fieldManager, FieldValidation: "Strict"})
	if apierrors.IsAlreadyExists(err) {
		return a.apply(ctx, o, revision, dry)
	}
	if err != nil {
		return "", nil, err
	}
	return ActionCreated, out, nil
}

// threeWay computes the patch from live to want given the configuration
// applied last time (original). A nil patch means nothing to change. The
// revision annotation alone never makes a patch.
func threeWay(want, live *unstructured.Unstructured, last string) (types.PatchType, []byte, error) {
	original := []byte(live.GetAnnotations()[AnnotationLastApplied])
	if len(original) == 0 {
		original = nil
	}
	if want.GetAnnotations()[AnnotationReplicas] == ReplicasAutoscaled {
		original = withoutReplicas(original)
	}
	// Compare without the revision first: if nothing else differs the
	// object is unchanged.
	probe := want.DeepCopy()
	ann := probe.GetAnnotations()
	if rev, ok := live.GetAnnotations()[AnnotationRevision]; ok {
		ann[AnnotationRevision] = rev
	} else {
		delete(ann, AnnotationRevision)
	}
	probe.SetAnnotations(ann)
	pt, p, err := computePatch(probe, live, original)
	if err != nil || isEmptyPatch(p) {
		return pt, nil, err
	}
	pt, p, err = computePatch(want, live, original)
	if err != nil || isEmptyPatch(p) {
		return pt, nil, err
	}
	return pt, p, nil
}

func computePatch(want, live *unstructured.Unstructured, original []byte) (types.PatchType, []byte, error) {
	modified, err := json.Marshal(want.Object)
	if err != nil {
		return "", nil, err
	}
	current, err := json.Marshal(live.Object)
	if err != nil {
		return "", nil, err
	}
	if obj, err := clientgoscheme.Scheme.New(want.GroupVersionKind()); err == nil {
		meta, err := strategicpatch.NewPatchMetaFromStruct(obj)
		if err != nil {
			return "", nil, err
		}
		p, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, meta, true)
		return types.StrategicMergePatchType, p, err
	}
	p, err := jsonmergepatch.CreateThreeWayJSONMergePatch(original, modified, current)
	return types.MergePatchType, p, err
}

func isEmptyPatch(p []byte) bool {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return false
	}
	return len(m) == 0
}

// prune deletes an inventory entry that left the repo, if the live object
// is still the one kiln applied (same UID) and does not opt out. It
// reports whether something was deleted.
func (a *applier) prune(ctx context.Context, e InventoryEntry) (bool, error) {
	ri, live, err := a.prunable(ctx, e)
	if err != nil || live == nil {
		return false, err
	}
	uid := types.UID(e.UID)
	bg := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, e.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// prunable returns the live object of e if prune would delete it: it
// exists, is still the object kiln applied (same UID), does not opt out
// and is not being deleted. Otherwise the object is nil. Diff shares it,
// so that what it reports is what a sync prunes.
func (a *applier) prunable(ctx context.Context, e InventoryEntry) (dynamic.ResourceInterface, *unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(schemaGV(e.Group, e.Version))
	u.SetKind(e.Kind)
	u.SetNamespace(e.Namespace)
	u.SetName(e.Name)
	ri, _, err := a.client(u)
	if err != nil {
		return nil, nil, err
	}
	live, err := ri.Get(ctx, e.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ri, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if string(live.GetUID()) != e.UID || live.GetAnnotations()[AnnotationPrune] == "disabled" || live.GetDeletionTimestamp() != nil {
		return ri, nil, nil
	}
	return ri, live, nil
}

func schemaGV(group, version string) string {
	if group == "" {
		return version
	}
	return group + "/" + version
}

var _ = corev1.SchemeGroupVersion

// withoutReplicas drops spec.replicas from a last-applied configuration, so
// that an autoscaler taking over a field kiln used to set does not see it
// deleted (and reset to 1) by the three-way patch.
func withoutReplicas(original []byte) []byte {
	if original == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(original, &m); err != nil {
		return original
	}
	unstructured.RemoveNestedField(m, "spec", "replicas")
	out, err := json.Marshal(m)
	if err != nil {
		return original
	}
	return out
}
