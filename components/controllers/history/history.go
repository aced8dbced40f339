// Package history holds what the DaemonSet and StatefulSet controllers
// share about ControllerRevisions, as kube's pkg/controller/history does:
// a revision's name, its data (the patch that restores a Pod template)
// and the hash that tells templates apart.
package history

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"reflect"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	appsclient "k8s.io/client-go/kubernetes/typed/apps/v1"
	appslisters "k8s.io/client-go/listers/apps/v1"

	"kiln.dev/kiln/components/controllers/worker"
)

// Name is kube's ControllerRevisionName: the owner's name, shortened to
// leave room, and the hash.
func Name(prefix, hash string) string {
	if len(prefix) > 223 {
		prefix = prefix[:223]
	}
	return prefix + "-" + hash
}

// TemplatePatch is what kube's DaemonSet and StatefulSet controllers store
// in a ControllerRevision (their getPatch): a strategic merge patch that
// puts the owner's Pod template back, whole.
func TemplatePatch(t *corev1.PodTemplateSpec) ([]byte, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	var tmpl map[string]any
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, err
	}
	tmpl["$patch"] = "replace"
	return json.Marshal(map[string]any{"spec": map[string]any{"template": tmpl}})
}

// SameData compares two revisions' data as JSON values, so that a server
// that re-encodes it (key order, spacing) does not make the current
// template look new.
func SameData(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// Hash is an FNV hash of data and the owner's collisionCount, in the
// alphabet kube's hashes use. A hash collision (another revision by that
// name with other data) bumps the count, and with it the hash.
func Hash(data []byte, collisionCount *int32) string {
	h := fnv.New32a()
	h.Write(data)
	if collisionCount != nil {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(*collisionCount))
		h.Write(n[:])
	}
	return rand.SafeEncodeString(strconv.FormatUint(uint64(h.Sum32()), 10))
}

// Owner is a DaemonSet or StatefulSet as Sync sees it.
type Owner struct {
	// Object is the owner; its name, namespace, UID and annotations
	// (kubernetes.io/change-cause, for rollout history) are used.
	Object metav1.Object
	// Kind is the owner's, for the revisions' ownerReferences.
	Kind schema.GroupVersionKind
	// Template is the owner's current Pod template.
	Template *corev1.PodTemplateSpec
	// Hash is the current template's hash (see Hash), the revision's
	// controller-revision-hash label and name suffix.
	Hash string
	// BumpCollisionCount writes the owner's status.collisionCount, one
	// more, after a hash collision.
	BumpCollisionCount func(ctx context.Context) error
}

// Sync makes sure the ControllerRevision of o's current template exists
// and has the highest revision number (a rollback to an earlier template
// renumbers that one, as kube does). It returns that revision and every
// revision o controls (orphans are not adopted). The revisions are named
// <name>-<hash>, labelled with the template's labels and the hash, and
// hold TemplatePatch, so `kubectl rollout history` lists them and
// `kubectl rollout undo` applies one.
func Sync(ctx context.Context, client kubernetes.Interface, lister appslisters.ControllerRevisionLister, o Owner) (cur *appsv1.ControllerRevision, owned []*appsv1.ControllerRevision, err error) {
	data, err := TemplatePatch(o.Template)
	if err != nil {
		return nil, nil, err
	}
	all, err := lister.ControllerRevisions(o.Object.GetNamespace()).List(labels.Everything())
	if err != nil {
		return nil, nil, err
	}
	maxRevision := int64(0)
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref == nil || ref.UID != o.Object.GetUID() {
			continue
		}
		owned = append(owned, r)
		maxRevision = max(maxRevision, r.Revision)
		if r.Labels[appsv1.ControllerRevisionHashLabelKey] == o.Hash && SameData(r.Data.Raw, data) {
			cur = r
		}
	}
	revs := client.AppsV1().ControllerRevisions(o.Object.GetNamespace())
	switch {
	case cur == nil:
		if cur, err = create(ctx, revs, o, data, maxRevision+1); err != nil {
			return nil, nil, err
		}
		owned = append(owned, cur)
	case cur.Revision < maxRevision:
		cp := cur.DeepCopy()
		cp.Revision = maxRevision + 1
		wctx, cancel := worker.WriteContext(ctx)
		defer cancel()
		if cur, err = revs.Update(wctx, cp, metav1.UpdateOptions{}); err != nil {
			return nil, nil, fmt.Errorf("renumber controllerrevision %s: %w", cp.Name, err)
		}
	}
	return cur, owned, nil
}

// create stores the ControllerRevision of o's current template. Found
// already there and the same (a cache behind our own create), it is used;
// a different one by that name is a hash collision, which bumps o's
// collisionCount so that the next sync hashes differently.
func create(ctx context.Context, revs appsclient.ControllerRevisionInterface, o Owner, data []byte, revision int64) (*appsv1.ControllerRevision, error) {
	lbls := maps.Clone(o.Template.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[appsv1.ControllerRevisionHashLabelKey] = o.Hash
	rev := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            Name(o.Object.GetName(), o.Hash),
			Namespace:       o.Object.GetNamespace(),
			Labels:          lbls,
			Annotations:     maps.Clone(o.Object.GetAnnotations()),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(o.Object, o.Kind)},
		},
		Data:     runtime.RawExtension{Raw: data},
		Revision: revision,
	}
	wctx, cancel := worker.WriteContext(ctx)
	defer cancel()
	created, err := revs.Create(wctx, rev, metav1.CreateOptions{})
	if err == nil {
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create controllerrevision %s: %w", rev.Name, err)
	}
	got, gerr := revs.Get(wctx, rev.Name, metav1.GetOptions{})
	if gerr != nil {
		return nil, fmt.Errorf("get controllerrevision %s: %w", rev.Name, gerr)
	}
	if ref := metav1.GetControllerOf(got); ref != nil && ref.UID == o.Object.GetUID() && SameData(got.Data.Raw, data) {
		return got, nil
	}
	if berr := o.BumpCollisionCount(wctx); berr != nil {
		return nil, errors.Join(err, fmt.Errorf("bump collisionCount: %w", berr))
	}
	return nil, fmt.Errorf("controllerrevision %s: hash collision, collisionCount bumped", rev.Name)
}

// Prune deletes the oldest of owned beyond limit among those live does
// not keep (the current revision, those Pods were made from).
func Prune(ctx context.Context, client kubernetes.Interface, owned []*appsv1.ControllerRevision, limit int, live func(*appsv1.ControllerRevision) bool) error {
	var old []*appsv1.ControllerRevision
	for _, r := range owned {
		if !live(r) {
			old = append(old, r)
		}
	}
	if len(old) <= limit {
		return nil
	}
	slices.SortFunc(old, func(a, b *appsv1.ControllerRevision) int { return cmp.Compare(a.Revision, b.Revision) })
	var errs []error
	for _, r := range old[:len(old)-limit] {
		wctx, cancel := worker.WriteContext(ctx)
		err := client.AppsV1().ControllerRevisions(r.Namespace).Delete(wctx, r.Name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(r.UID))})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("delete controllerrevision %s: %w", r.Name, err))
		}
	}
	return errors.Join(errs...)
}
