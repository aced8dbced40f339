package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/components/store"
)

// deleteOptions reads DeleteOptions from the body (JSON or protobuf) and
// the query, as kube accepts both.
func deleteOptions(w http.ResponseWriter, r *http.Request, gv schema.GroupVersion) (metav1.DeleteOptions, error) {
	var opts metav1.DeleteOptions
	body, err := readBody(w, r)
	if err != nil {
		return opts, err
	}
	if len(body) > 0 {
		// DeleteOptions is registered in every group version, and clients
		// tag it with meta.k8s.io/v1, the core v1, or the resource's own
		// group version (client-go's typed clients); each is accepted.
		var first error
		for _, v := range []schema.GroupVersion{metav1.SchemeGroupVersion, {Version: "v1"}, gv} {
			opts = metav1.DeleteOptions{}
			_, err := decodeBody(r, body, &opts, v.WithKind("DeleteOptions"), decodeOptions{fieldValidation: "Ignore"})
			if err == nil {
				first = nil
				break
			}
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return opts, first
		}
	}
	// client-go sends dryRun in the body, kubectl in the query; both count.
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			return opts, badRequest("dryRun must be All, not %q", v)
		}
	}
	q := r.URL.Query()
	if g := q.Get("gracePeriodSeconds"); g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return opts, badRequest("invalid gracePeriodSeconds %q", g)
		}
		opts.GracePeriodSeconds = &n
	}
	if p := q.Get("propagationPolicy"); p != "" {
		pp := metav1.DeletionPropagation(p)
		opts.PropagationPolicy = &pp
	}
	if q.Get("orphanDependents") != "" && opts.PropagationPolicy == nil {
		if v, _ := strconv.ParseBool(q.Get("orphanDependents")); v {
			pp := metav1.DeletePropagationOrphan
			opts.PropagationPolicy = &pp
		}
	}
	if opts.PropagationPolicy == nil && opts.OrphanDependents != nil && *opts.OrphanDependents {
		pp := metav1.DeletePropagationOrphan
		opts.PropagationPolicy = &pp
	}
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return opts, badRequest("propagationPolicy must be Orphan, Background or Foreground, not %q", *opts.PropagationPolicy)
		}
	}
	return opts, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	dry, err := dryRun(r)
	if err != nil {
		writeError(w, err)
		return
	}
	opts, err := deleteOptions(w, r, res.GroupVersion())
	if err != nil {
		writeError(w, err)
		return
	}
	dry = dry || len(opts.DryRun) > 0
	out, gone, err := s.delete(r.Context(), res, ri.namespace, ri.name, opts, dry)
	if err != nil {
		writeError(w, err)
		return
	}
	s.writeDeleted(w, res, out, gone)
}

// writeDeleted answers a delete as kube does: pods and objects that are
// still terminating come back whole; others get a Success Status.
func (s *Server) writeDeleted(w http.ResponseWriter, res *resource, obj runtime.Object, gone bool) {
	if !gone || res.Group == "" && res.Name == "pods" {
		writeJSON(w, http.StatusOK, obj)
		return
	}
	m := accessor(obj)
	writeJSON(w, http.StatusOK, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusSuccess,
		Details:  &metav1.StatusDetails{Name: m.GetName(), Group: res.Group, Kind: res.Name, UID: m.GetUID()},
	})
}

// delete removes an object or starts its graceful deletion: finalizers
// (including those the propagation policy adds for the garbage collector)
// and a pod's grace period keep it, with deletionTimestamp set. gone says
// whether the object left the store.
func (s *Server) delete(ctx context.Context, res *resource, ns, name string, opts metav1.DeleteOptions, dry bool) (runtime.Object, bool, error) {
	if res.conv == nil {
		return s.deleteStored(ctx, res, ns, name, opts, dry)
	}
	out, gone, err := s.deleteStored(ctx, res.conv.storage, ns, name, opts, dry)
	if err != nil {
		return nil, false, err
	}
	out, err = res.fromStorage(out)
	return out, gone, err
}

// deleteStored is delete at the version res stores.
func (s *Server) deleteStored(ctx context.Context, res *resource, ns, name string, opts metav1.DeleteOptions, dry bool) (runtime.Object, bool, error) {
	key := res.key(ns, name)
	for attempt := 0; ; attempt++ {
		kv, err := s.store.Get(ctx, key)
		if err != nil {
			return nil, false, storeError(err, res.gr, name)
		}
		obj, err := res.decodeStored(kv)
		if err != nil {
			return nil, false, err
		}
		m := accessor(obj)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != m.GetUID() {
				return nil, false, apierrors.NewConflict(res.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, m.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != m.GetResourceVersion() {
				return nil, false, apierrors.NewConflict(res.gr, name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, m.GetResourceVersion()))
			}
		}
		keep, changed := s.markDeleting(res, obj, opts)
		if dry {
			return obj, !keep, nil
		}
		var rev int64
		if keep {
			if !changed {
				return obj, false, nil
			}
			var data []byte
			data, err = res.encodeStored(obj)
			if err == nil {
				rev, err = s.store.Update(ctx, key, data, kv.ModRevision, store.WriteOptions{})
			}
		} else {
			rev, err = s.store.Delete(ctx, key, kv.ModRevision, store.WriteOptions{Extras: s.releaseAll(obj)})
		}
		if errors.Is(err, store.ErrConflict) && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return nil, false, storeError(err, res.gr, name)
		}
		if namedByTokens(res) {
			s.tokens.forget()
		}
		// A deleted object comes back at the revision of its delete, as
		// kube's store answers and as the watch's DELETED event carries.
		m.SetResourceVersion(formatRev(rev))
		if _, ok := obj.(*corev1.Namespace); ok && keep {
			// Refuse new content at once, not when the watch catches up.
			s.namespaces.update(m.GetName(), true, false)
		}
		return obj, !keep, nil
	}
}

// markDeleting sets deletionTimestamp and the propagation finalizers when
// the object must stay for now. keep says it stays; changed says obj was
// modified.
func (s *Server) markDeleting(res *resource, obj runtime.Object, opts metav1.DeleteOptions) (keep, changed bool) {
	m := accessor(obj)
	now := metav1.NewTime(s.now().Truncate(time.Second))
	pod, isPod := obj.(*corev1.Pod)

	grace := int64(0)
	if isPod && pod.Spec.NodeName != "" && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		grace = corev1.DefaultTerminationGracePeriodSeconds
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		if opts.GracePeriodSeconds != nil {
			grace = *opts.GracePeriodSeconds
		}
	}

	if m.GetDeletionTimestamp() != nil {
		// Already terminating: a shorter grace period may hurry a pod along,
		// and grace 0 removes it unless finalizers remain.
		if isPod && pod.DeletionGracePeriodSeconds != nil && grace < *pod.DeletionGracePeriodSeconds {
			if grace == 0 && len(m.GetFinalizers()) == 0 {
				return false, false
			}
			m.SetDeletionGracePeriodSeconds(&grace)
			m.SetDeletionTimestamp(&now)
			return true, true
		}
		return true, false
	}

	finalizers := m.GetFinalizers()
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationOrphan:
			finalizers = addString(finalizers, metav1.FinalizerOrphanDependents)
		case metav1.DeletePropagationForeground:
			finalizers = addString(finalizers, metav1.FinalizerDeleteDependents)
		}
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		// The namespace controller empties the namespace, then finalizes it.
		if len(ns.Spec.Finalizers) > 0 || len(finalizers) > 0 {
			m.SetFinalizers(finalizers)
			m.SetDeletionTimestamp(&now)
			zero := int64(0)
			m.SetDeletionGracePeriodSeconds(&zero)
			ns.Status.Phase = corev1.NamespaceTerminating
			return true, true
		}
		return false, false
	}
	if grace == 0 && len(finalizers) == 0 {
		return false, false
	}
	m.SetFinalizers(finalizers)
	ts := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
	m.SetDeletionTimestamp(&ts)
	m.SetDeletionGracePeriodSeconds(&grace)
	if res.hasSpec {
		m.SetGeneration(m.GetGeneration() + 1)
	}
	return true, true
}

func addString(list []string, s string) []string {
	for _, v := range list {
		if v == s {
			return list
		}
	}
	return append(list, s)
}

func (s *Server) handleDeleteCollection(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	dry, err := dryRun(r)
	if err != nil {
		writeError(w, err)
		return
	}
	f, err := parseFilter(r, res)
	if err != nil {
		writeError(w, err)
		return
	}
	opts, err := deleteOptions(w, r, res.GroupVersion())
	if err != nil {
		writeError(w, err)
		return
	}
	dry = dry || len(opts.DryRun) > 0
	q := r.URL.Query()
	q.Del("limit")
	q.Del("continue")
	r.URL.RawQuery = q.Encode()
	lr, err := s.list(r, res, ri.namespace, f)
	if err != nil {
		writeError(w, err)
		return
	}
	for _, kv := range lr.items {
		obj, err := res.decodeStored(kv)
		if err != nil {
			writeError(w, err)
			return
		}
		m := accessor(obj)
		if _, _, err := s.delete(r.Context(), res, m.GetNamespace(), m.GetName(), opts, dry); err != nil && !apierrors.IsNotFound(err) {
			writeError(w, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
}
