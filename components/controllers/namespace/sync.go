package namespace

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
)

// sync empties one deleted namespace and finalizes it once a pass finds
// nothing left and failed at nothing. It re-reads the namespace and is
// idempotent.
func (c *Controller) sync(ctx context.Context, name string) error {
	nsc := c.cfg.Client.CoreV1().Namespaces()
	ns, err := nsc.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get namespace: %w", err)
	}
	if ns.DeletionTimestamp == nil || !slices.Contains(ns.Spec.Finalizers, corev1.FinalizerKubernetes) {
		return nil
	}
	p := c.deleteContent(ctx, name)
	ns, err = c.updateConditions(ctx, ns, p.conditions())
	if perr := p.err(); perr != nil || err != nil {
		return errors.Join(perr, err)
	}
	if len(p.remaining) > 0 {
		return &contentRemainingError{msg: p.remainingMessage()}
	}
	ns = ns.DeepCopy()
	ns.Spec.Finalizers = slices.DeleteFunc(ns.Spec.Finalizers, func(f corev1.FinalizerName) bool { return f == corev1.FinalizerKubernetes })
	if _, err := nsc.Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("finalize: %w", err)
	}
	c.log.Debug("namespace finalized", logKeyNamespace, name)
	return nil
}

// pass is the outcome of one attempt to empty a namespace.
type pass struct {
	discoveryErr error
	parseErrs    []error
	deleteErrs   []error
	// remaining counts objects left per resource, and finalizers counts
	// the objects left that carry each finalizer.
	remaining  map[schema.GroupResource]int
	finalizers map[string]int
}

func (p *pass) err() error {
	var errs []error
	if p.discoveryErr != nil {
		errs = append(errs, fmt.Errorf("discovery: %w", p.discoveryErr))
	}
	errs = append(errs, p.parseErrs...)
	errs = append(errs, p.deleteErrs...)
	return errors.Join(errs...)
}

// target is one resource to empty.
type target struct {
	gvr   schema.GroupVersionResource
	verbs metav1.Verbs
}

// deleteContent deletes every deletable namespaced resource in ns and
// counts what remains. Failures are collected, not returned early: one
// broken resource must not stop the others from being emptied (kube).
func (c *Controller) deleteContent(ctx context.Context, ns string) *pass {
	p := &pass{remaining: map[schema.GroupResource]int{}, finalizers: map[string]int{}}
	// A partial discovery failure still lists the groups that answered;
	// empty those, but do not finalize (p.err is set) while a group
	// is unknown, or its objects would outlive their namespace.
	lists, err := discovery.ServerPreferredNamespacedResources(c.cfg.Discovery)
	if err != nil {
		p.discoveryErr = err
	}
	var targets []target
	for _, l := range lists {
		if l == nil {
			continue
		}
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			p.parseErrs = append(p.parseErrs, fmt.Errorf("parse group version %q: %w", l.GroupVersion, err))
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			targets = append(targets, target{gvr: gv.WithResource(r.Name), verbs: r.Verbs})
		}
	}
	slices.SortFunc(targets, func(a, b target) int {
		return cmp.Or(cmp.Compare(a.gvr.Group, b.gvr.Group), cmp.Compare(a.gvr.Resource, b.gvr.Resource))
	})
	for _, t := range targets {
		if err := c.deleteCollection(ctx, ns, t); err != nil {
			p.deleteErrs = append(p.deleteErrs, fmt.Errorf("delete %s: %w", t.gvr.GroupResource(), err))
		}
		if !slices.Contains(t.verbs, "list") {
			continue
		}
		list, err := c.cfg.Dynamic.Resource(t.gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			p.deleteErrs = append(p.deleteErrs, fmt.Errorf("list %s: %w", t.gvr.GroupResource(), err))
			continue
		}
		if n := len(list.Items); n > 0 {
			p.remaining[t.gvr.GroupResource()] += n
		}
		for _, item := range list.Items {
			for _, f := range item.GetFinalizers() {
				p.finalizers[f]++
			}
		}
	}
	return p
}

// deleteCollection deletes everything of one resource in ns, with one
// deletecollection when the resource supports it and one delete per
// object otherwise.
func (c *Controller) deleteCollection(ctx context.Context, ns string, t target) error {
	background := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &background}
	ri := c.cfg.Dynamic.Resource(t.gvr).Namespace(ns)
	if slices.Contains(t.verbs, "deletecollection") {
		err := ri.DeleteCollection(ctx, opts, metav1.ListOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if !apierrors.IsMethodNotSupported(err) {
			return err
		}
	}
	if !slices.Contains(t.verbs, "list") {
		return nil
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var errs []error
	for _, item := range list.Items {
		if item.GetDeletionTimestamp() != nil {
			continue
		}
		uid := item.GetUID()
		o := opts
		o.Preconditions = &metav1.Preconditions{UID: &uid}
		err := ri.Delete(ctx, item.GetName(), o)
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Condition reasons and messages, as kube's namespace controller writes
// them (pkg/controller/namespace/deletion/status_condition_utils.go).
const (
	reasonDiscoveryFailed     = "DiscoveryFailed"
	reasonDiscovered          = "ResourcesDiscovered"
	reasonGVParsingFailed     = "GroupVersionParsingFailed"
	reasonGVParsed            = "ParsedGroupVersions"
	reasonContentFailed       = "ContentDeletionFailed"
	reasonContentDeleted      = "ContentDeleted"
	reasonContentRemaining    = "SomeResourcesRemain"
	reasonContentRemoved      = "ContentRemoved"
	reasonFinalizersRemaining = "SomeFinalizersRemain"
	reasonNoFinalizers        = "ContentHasNoFinalizers"
)

// conditions are the five deletion conditions this pass implies.
func (p *pass) conditions() []corev1.NamespaceCondition {
	cond := func(t corev1.NamespaceConditionType, failed bool, failReason, failMsg, okReason, okMsg string) corev1.NamespaceCondition {
		if failed {
			return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionTrue, Reason: failReason, Message: failMsg}
		}
		return corev1.NamespaceCondition{Type: t, Status: corev1.ConditionFalse, Reason: okReason, Message: okMsg}
	}
	var discoveryMsg string
	var gdf *discovery.ErrGroupDiscoveryFailed
	switch {
	case errors.As(p.discoveryErr, &gdf):
		var gvs []string
		for gv := range gdf.Groups {
			gvs = append(gvs, gv.String())
		}
		sort.Strings(gvs)
		discoveryMsg = fmt.Sprintf("Discovery failed for some groups, %d failing: %s", len(gvs), strings.Join(gvs, ", "))
	case p.discoveryErr != nil:
		discoveryMsg = p.discoveryErr.Error()
	}
	return []corev1.NamespaceCondition{
		cond(corev1.NamespaceDeletionDiscoveryFailure, p.discoveryErr != nil,
			reasonDiscoveryFailed, discoveryMsg, reasonDiscovered, "All resources successfully discovered"),
		cond(corev1.NamespaceDeletionGVParsingFailure, len(p.parseErrs) > 0,
			reasonGVParsingFailed, errorsMessage(p.parseErrs), reasonGVParsed, "All legacy kube types successfully parsed"),
		cond(corev1.NamespaceDeletionContentFailure, len(p.deleteErrs) > 0,
			reasonContentFailed, fmt.Sprintf("Failed to delete all resource types, %d remaining: %s", len(p.deleteErrs), errorsMessage(p.deleteErrs)),
			reasonContentDeleted, "All content successfully deleted, may be waiting on finalization"),
		cond(corev1.NamespaceContentRemaining, len(p.remaining) > 0,
			reasonContentRemaining, "Some resources are remaining: "+p.remainingMessage(), reasonContentRemoved, "All content successfully removed"),
		cond(corev1.NamespaceFinalizersRemaining, len(p.finalizers) > 0,
			reasonFinalizersRemaining, "Some content in the namespace has finalizers remaining: "+p.finalizersMessage(),
			reasonNoFinalizers, "All content-preserving finalizers finished"),
	}
}

func (p *pass) remainingMessage() string {
	var parts []string
	for gr, n := range p.remaining {
		parts = append(parts, fmt.Sprintf("%s has %d resource instances", gr, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func (p *pass) finalizersMessage() string {
	var parts []string
	for f, n := range p.finalizers {
		parts = append(parts, fmt.Sprintf("%s in %d resource instances", f, n))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func errorsMessage(errs []error) string {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

// updateConditions writes want into the namespace's status when they
// differ from what it holds, keeping a condition's LastTransitionTime
// while its status is unchanged, and returns the namespace as stored.
func (c *Controller) updateConditions(ctx context.Context, ns *corev1.Namespace, want []corev1.NamespaceCondition) (*corev1.Namespace, error) {
	now := metav1.NewTime(c.now())
	conds := slices.Clone(ns.Status.Conditions)
	changed := false
	for _, w := range want {
		i := slices.IndexFunc(conds, func(c corev1.NamespaceCondition) bool { return c.Type == w.Type })
		if i < 0 {
			w.LastTransitionTime = now
			conds = append(conds, w)
			changed = true
			continue
		}
		old := conds[i]
		if old.Status == w.Status && old.Reason == w.Reason && old.Message == w.Message {
			continue
		}
		w.LastTransitionTime = old.LastTransitionTime
		if old.Status != w.Status {
			w.LastTransitionTime = now
		}
		conds[i] = w
		changed = true
	}
	if !changed {
		return ns, nil
	}
	ns = ns.DeepCopy()
	ns.Status.Conditions = conds
	out, err := c.cfg.Client.CoreV1().Namespaces().UpdateStatus(ctx, ns, metav1.UpdateOptions{})
	if err != nil {
		return ns, fmt.Errorf("update status: %w", err)
	}
	return out, nil
}
