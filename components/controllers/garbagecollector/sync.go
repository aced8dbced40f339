package garbagecollector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// maxPatchConflicts bounds the re-read and re-patch of one object within
// one sync; the queue's backoff takes over after that.
const maxPatchConflicts = 5

// sync settles one object: it carries out an owner's orphan or
// foreground finalizer, or collects a dependent whose owners are gone.
// It re-reads what it writes and is idempotent.
func (c *Controller) sync(ctx context.Context, uid types.UID) error {
	n := c.graph.node(uid)
	if n == nil {
		return nil
	}
	switch {
	case n.orphaning():
		return c.orphanDependents(ctx, n)
	case n.deletingDependents():
		return c.deleteDependents(ctx, n)
	case n.deleting || len(n.owners) == 0:
		return nil
	}
	return c.collect(ctx, n)
}

// ownerState is what a dependent's owner is to it.
type ownerState int

const (
	// ownerSolid exists and is not waiting on its dependents (or cannot
	// be resolved, which keeps the dependent as kube does).
	ownerSolid ownerState = iota
	// ownerGone no longer exists under the name and UID referenced.
	ownerGone
	// ownerWaiting is being deleted in the foreground: its dependents go
	// first.
	ownerWaiting
)

// collect deletes n when none of its owners remains, and drops its
// references to owners that are gone or waiting when another remains.
func (c *Controller) collect(ctx context.Context, n *node) error {
	if c.ownersSolidInGraph(n) {
		// Nothing to do, and no request spent: every object with owners
		// is queued when the informers first list.
		return nil
	}
	obj, err := c.live(ctx, n)
	if obj == nil || obj.GetDeletionTimestamp() != nil {
		return err
	}
	var solid, drop int
	var waiting bool
	dropped := map[types.UID]bool{}
	for _, ref := range obj.GetOwnerReferences() {
		st, err := c.ownerState(ctx, n, ref)
		if err != nil {
			return err
		}
		switch st {
		case ownerSolid:
			solid++
		case ownerGone:
			drop++
			dropped[ref.UID] = true
		case ownerWaiting:
			drop++
			dropped[ref.UID] = true
			waiting = true
		}
	}
	switch {
	case drop == 0:
		return nil
	case solid > 0:
		// Another owner keeps n; stop naming the ones that are gone, and
		// stop holding up the ones deleting in the foreground.
		c.log.Debug("dropping owner references", logKeyObject, n.String(), logKeyCount, drop)
		return c.patchMeta(ctx, n, "ownerReferences", func(obj *unstructured.Unstructured) (any, bool) {
			refs := obj.GetOwnerReferences()
			kept := slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return dropped[r.UID] })
			return nilIfEmpty(kept), len(kept) != len(refs)
		})
	}
	policy := metav1.DeletePropagationBackground
	switch {
	case waiting:
		// An owner waits on n: if n has blocking dependents of its own,
		// it must wait on them too, so the foreground chain holds.
		if !c.synced() {
			return errNotSynced
		}
		if c.graph.hasBlockingDependents(n.uid) {
			policy = metav1.DeletePropagationForeground
		}
	case slices.Contains(obj.GetFinalizers(), metav1.FinalizerOrphanDependents):
		policy = metav1.DeletePropagationOrphan
	case slices.Contains(obj.GetFinalizers(), metav1.FinalizerDeleteDependents):
		policy = metav1.DeletePropagationForeground
	}
	c.log.Debug("deleting object whose owners are gone", logKeyObject, n.String(), logKeyPropagation, policy)
	return c.deleteObject(ctx, n, policy)
}

// ownersSolidInGraph says every owner of n is in the graph and not
// deleting in the foreground. An owner deleted since is a delete event
// still to come, which queues n again.
func (c *Controller) ownersSolidInGraph(n *node) bool {
	for _, ref := range n.owners {
		o := c.graph.node(ref.UID)
		if o == nil || !o.is(ref, n.namespace) || o.deletingDependents() {
			return false
		}
	}
	return true
}

// ownerState resolves one ownerReference of n: from the graph when the
// owner is there, else by a live read (an owner missing from the graph
// may just not be listed yet).
func (c *Controller) ownerState(ctx context.Context, n *node, ref metav1.OwnerReference) (ownerState, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return 0, fmt.Errorf("owner %s: %w", ref.Name, err)
	}
	key := absentKey{uid: ref.UID, group: gv.Group, kind: ref.Kind, namespace: n.namespace, nm: ref.Name}
	if c.absent.has(key) {
		return ownerGone, nil
	}
	if o := c.graph.node(ref.UID); o != nil && o.is(ref, n.namespace) {
		if o.deletingDependents() {
			return ownerWaiting, nil
		}
		return ownerSolid, nil
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
	mapping, err := c.mapper.RESTMapping(gk, gv.Version)
	if meta.IsNoMatchError(err) {
		// The version named may no longer be served; the kind may be.
		mapping, err = c.mapper.RESTMapping(gk)
	}
	if err != nil {
		return 0, fmt.Errorf("resolve owner kind %s: %w", gv.WithKind(ref.Kind), err)
	}
	ns := ""
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if n.namespace == "" {
			// A cluster-scoped object cannot have a namespaced owner; kube
			// treats the reference as unresolvable and keeps the object.
			return ownerSolid, nil
		}
		// An owner is looked up in its dependent's namespace only: one
		// elsewhere is absent, as in kube.
		ns = n.namespace
	}
	owner, err := c.cfg.Dynamic.Resource(mapping.Resource).Namespace(ns).Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.absent.add(key)
		return ownerGone, nil
	case err != nil:
		return 0, fmt.Errorf("get owner %s %s: %w", mapping.Resource.GroupResource(), ref.Name, err)
	case owner.GetUID() != ref.UID:
		c.absent.add(key)
		return ownerGone, nil
	case owner.GetDeletionTimestamp() != nil && slices.Contains(owner.GetFinalizers(), metav1.FinalizerDeleteDependents):
		return ownerWaiting, nil
	}
	return ownerSolid, nil
}

// orphanDependents removes n's ownerReference from every dependent, then
// the orphan finalizer from n.
func (c *Controller) orphanDependents(ctx context.Context, n *node) error {
	if !c.synced() {
		return errNotSynced
	}
	obj, err := c.live(ctx, n)
	if obj == nil || obj.GetDeletionTimestamp() == nil || !slices.Contains(obj.GetFinalizers(), metav1.FinalizerOrphanDependents) {
		return err
	}
	var errs []error
	for _, d := range c.graph.dependentsOf(n.uid) {
		err := c.patchMeta(ctx, d, "ownerReferences", func(obj *unstructured.Unstructured) (any, bool) {
			refs := obj.GetOwnerReferences()
			kept := slices.DeleteFunc(slices.Clone(refs), func(r metav1.OwnerReference) bool { return r.UID == n.uid })
			return nilIfEmpty(kept), len(kept) != len(refs)
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	c.log.Debug("dependents orphaned", logKeyObject, n.String())
	return c.removeFinalizer(ctx, n, metav1.FinalizerOrphanDependents)
}

// deleteDependents deletes n's dependents and, once none that blocks
// remains, removes the foregroundDeletion finalizer from n.
func (c *Controller) deleteDependents(ctx context.Context, n *node) error {
	if !c.synced() {
		return errNotSynced
	}
	obj, err := c.live(ctx, n)
	if obj == nil || obj.GetDeletionTimestamp() == nil || !slices.Contains(obj.GetFinalizers(), metav1.FinalizerDeleteDependents) {
		return err
	}
	blocked := false
	for _, d := range c.graph.dependentsOf(n.uid) {
		if !d.deleting {
			c.queue.Add(d.uid) // collect sees n waiting and deletes d
		}
		if !d.blocks(n.uid) {
			continue
		}
		blocked = true
		if d.deletingDependents() && (d.uid == n.uid || c.graph.waitsOn(d.uid, n.uid)) {
			// n waits on d and d, through its own blocking dependents, on
			// n: neither could finish. Let n go first; d then finds n
			// gone. The update of d requeues n.
			c.log.Debug("breaking ownership cycle", logKeyObject, d.String(), logKeyOwner, n.String())
			err := c.patchMeta(ctx, d, "ownerReferences", func(obj *unstructured.Unstructured) (any, bool) {
				refs := slices.Clone(obj.GetOwnerReferences())
				changed := false
				for i, r := range refs {
					if r.UID == n.uid && r.BlockOwnerDeletion != nil && *r.BlockOwnerDeletion {
						no := false
						refs[i].BlockOwnerDeletion = &no
						changed = true
					}
				}
				return refs, changed
			})
			if err != nil {
				return err
			}
		}
	}
	if blocked {
		return nil // a dependent's update or delete requeues n
	}
	c.log.Debug("dependents deleted", logKeyObject, n.String())
	return c.removeFinalizer(ctx, n, metav1.FinalizerDeleteDependents)
}

func (c *Controller) removeFinalizer(ctx context.Context, n *node, f string) error {
	return c.patchMeta(ctx, n, "finalizers", func(obj *unstructured.Unstructured) (any, bool) {
		fs := obj.GetFinalizers()
		kept := slices.DeleteFunc(slices.Clone(fs), func(s string) bool { return s == f })
		return nilIfEmpty(kept), len(kept) != len(fs)
	})
}

// patchMeta re-reads n and sets one metadata field to what change
// returns (when it reports a change) with a JSON merge patch that names
// the resourceVersion read, so a concurrent writer is never overwritten:
// on conflict it reads again.
func (c *Controller) patchMeta(ctx context.Context, n *node, field string, change func(*unstructured.Unstructured) (any, bool)) error {
	for range maxPatchConflicts {
		obj, err := c.live(ctx, n)
		if obj == nil {
			return err
		}
		v, changed := change(obj)
		if !changed {
			return nil
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": obj.GetResourceVersion(), field: v}})
		if err != nil {
			return err
		}
		_, err = c.resource(n).Patch(ctx, n.name, types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			continue
		default:
			return fmt.Errorf("patch %s of %s: %w", field, n, err)
		}
	}
	return fmt.Errorf("patch %s of %s: %d conflicts in a row", field, n, maxPatchConflicts)
}

// deleteObject deletes n, if it is still the object with n's UID.
func (c *Controller) deleteObject(ctx context.Context, n *node, policy metav1.DeletionPropagation) error {
	uid := n.uid
	err := c.resource(n).Delete(ctx, n.name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &policy})
	if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return fmt.Errorf("delete %s: %w", n, err)
}

// live reads n from the API server; nil without error means it is gone
// (or its name now holds another object).
func (c *Controller) live(ctx context.Context, n *node) (*unstructured.Unstructured, error) {
	obj, err := c.resource(n).Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", n, err)
	}
	if obj.GetUID() != n.uid {
		return nil, nil
	}
	return obj, nil
}

func (c *Controller) resource(n *node) dynamic.ResourceInterface {
	return c.cfg.Dynamic.Resource(n.gvr).Namespace(n.namespace)
}

// nilIfEmpty makes an empty list a JSON null, which a merge patch reads
// as "remove the field".
func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
