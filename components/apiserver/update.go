package apiserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/components/apiserver/admission"
	"kiln.dev/kiln/components/store"
)

// maxUpdateRetries bounds the read-modify-write loop of writes that carry
// no resourceVersion precondition (patches, unconditional PUTs).
const maxUpdateRetries = 10

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo, sub string) {
	obj, warnings, dry, err := readObject(w, r, res)
	if err != nil {
		writeError(w, err)
		return
	}
	m := accessor(obj)
	if m.GetName() != ri.name {
		writeError(w, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), ri.name))
		return
	}
	if err := checkNamespace(res, m, ri.namespace); err != nil {
		writeError(w, err)
		return
	}
	out, created, err := s.update(r.Context(), res, ri.namespace, ri.name, sub, dry, m.GetResourceVersion() == "", func(old runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	addWarnings(w, warnings)
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	writeObject(w, r, code, out, nil)
}

// updateFunc returns the desired object given the current one (a copy it
// may change). A resourceVersion it sets is a precondition.
type updateFunc func(old runtime.Object) (runtime.Object, error)

// update is kube's GuaranteedUpdate: read, apply fn, admit, and
// compare-and-swap on the revision read. When retry is true (no
// resourceVersion precondition from the client) a lost race re-reads and
// tries again. sub is "" or "status". A write that changes nothing is not
// stored. created reports an upsert (server-side apply).
func (s *Server) update(ctx context.Context, res *resource, ns, name, sub string, dry, retry bool, fn updateFunc) (out runtime.Object, created bool, err error) {
	if res.conv == nil {
		return s.updateStored(ctx, res, ns, name, sub, dry, retry, fn)
	}
	// fn sees and returns the request's version; everything else, status
	// and metadata kept from the stored object included, happens at the
	// storage version, so nothing the request's version cannot express is
	// lost.
	out, created, err = s.updateStored(ctx, res.conv.storage, ns, name, sub, dry, retry, func(old runtime.Object) (runtime.Object, error) {
		in, err := res.fromStorage(old)
		if err != nil {
			return nil, err
		}
		obj, err := fn(in)
		if err != nil {
			return nil, err
		}
		return res.toStorage(obj)
	})
	if err != nil {
		return nil, false, err
	}
	out, err = res.fromStorage(out)
	return out, created, err
}

// updateStored is update at the version res stores.
func (s *Server) updateStored(ctx context.Context, res *resource, ns, name, sub string, dry, retry bool, fn updateFunc) (out runtime.Object, created bool, err error) {
	key := res.key(ns, name)
	for attempt := 0; ; attempt++ {
		kv, err := s.store.Get(ctx, key)
		if err != nil {
			return nil, false, storeError(err, res.gr, name)
		}
		old, err := res.decodeStored(kv)
		if err != nil {
			return nil, false, err
		}
		obj, err := fn(old.DeepCopyObject())
		if err != nil {
			return nil, false, err
		}
		m := accessor(obj)
		if rv := m.GetResourceVersion(); rv == "" {
			// No precondition (a scale, an unconditional PUT): write over
			// the revision read, as kube's AllowUnconditionalUpdate does;
			// validation requires a resourceVersion on every update.
			m.SetResourceVersion(formatRev(kv.ModRevision))
		} else if rv != formatRev(kv.ModRevision) {
			return nil, false, apierrors.NewConflict(res.gr, name, errors.New(registryConflictMsg))
		}
		if uid := m.GetUID(); uid != "" && uid != accessor(old).GetUID() {
			return nil, false, apierrors.NewConflict(res.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, accessor(old).GetUID()))
		}
		obj = s.prepareUpdate(res, sub, obj, old)
		errs := admission.ValidateUpdate
		if sub == subEphemeralContainers {
			errs = func(obj, old runtime.Object, _ bool) field.ErrorList {
				return admission.ValidateEphemeralContainersUpdate(obj.(*corev1.Pod), old.(*corev1.Pod))
			}
		}
		if errs := errs(obj, old, res.Namespaced); len(errs) > 0 {
			return nil, false, invalid(res.gk, name, errs)
		}
		if err := admitNodeUpdate(userFrom(ctx), res, obj, old); err != nil {
			return nil, false, err
		}
		opts, err := s.admitUpdate(ctx, res, obj, old)
		if err != nil {
			return nil, false, err
		}
		data, err := res.encodeStored(obj)
		if err != nil {
			return nil, false, err
		}
		if bytes.Equal(data, kv.Value) {
			return old, false, nil
		}
		om := accessor(obj)
		if dry {
			return obj, false, nil
		}
		var rev int64
		if om.GetDeletionTimestamp() != nil && len(om.GetFinalizers()) == 0 && !namespaceHasFinalizers(obj) && !gracefulPod(obj) {
			// The last finalizer is gone: the object goes, as in kube.
			opts.Extras = append(opts.Extras, s.releaseAll(obj)...)
			rev, err = s.store.Delete(ctx, key, kv.ModRevision, opts)
		} else {
			rev, err = s.store.Update(ctx, key, data, kv.ModRevision, opts)
		}
		if err != nil {
			// A lost allocation (ErrPrecondition) is retried even under
			// the client's resourceVersion: the re-read answers 409 if
			// the object changed, else the retry picks another IP or
			// port, or refuses one the client chose as allocated.
			if (errors.Is(err, store.ErrConflict) && retry || errors.Is(err, store.ErrPrecondition)) && attempt < maxUpdateRetries {
				continue
			}
			return nil, false, storeError(err, res.gr, name)
		}
		om.SetResourceVersion(formatRev(rev))
		return obj, false, nil
	}
}

// subEphemeralContainers is the pods subresource kubectl debug writes.
const subEphemeralContainers = "ephemeralcontainers"

// prepareUpdate keeps what a client may not change through this endpoint,
// as kube's strategies' PrepareForUpdate do, then applies defaults.
func (s *Server) prepareUpdate(res *resource, sub string, obj, old runtime.Object) runtime.Object {
	switch {
	case sub == "status":
		// Only status changes; everything else is the stored object.
		next := old.DeepCopyObject()
		copyTop(next, obj, "Status")
		accessor(next).SetResourceVersion(accessor(obj).GetResourceVersion())
		obj = next
	case sub == subEphemeralContainers:
		// Only spec.ephemeralContainers changes (kubectl debug).
		next := old.DeepCopyObject().(*corev1.Pod)
		next.Spec.EphemeralContainers = obj.(*corev1.Pod).Spec.EphemeralContainers
		next.SetResourceVersion(accessor(obj).GetResourceVersion())
		obj = next
	case res.statusSub:
		copyTop(obj, old, "Status")
	}
	m, om := accessor(obj), accessor(old)
	m.SetUID(om.GetUID())
	m.SetCreationTimestamp(om.GetCreationTimestamp())
	m.SetDeletionTimestamp(om.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(om.GetDeletionGracePeriodSeconds())
	m.SetManagedFields(nil)
	m.SetSelfLink("")
	if om.GetDeletionTimestamp() != nil {
		// A terminating object may lose finalizers but gain none (kube).
		m.SetFinalizers(onlyKept(m.GetFinalizers(), om.GetFinalizers()))
	}
	admission.Default(obj)
	if svc, ok := obj.(*corev1.Service); ok {
		keepAllocations(svc, old.(*corev1.Service))
	}
	m.SetGeneration(om.GetGeneration())
	if res.hasSpec && specChanged(obj, old) {
		m.SetGeneration(om.GetGeneration() + 1)
	}
	return obj
}

func onlyKept(next, prev []string) []string {
	var out []string
	for _, f := range next {
		for _, p := range prev {
			if f == p {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// admitUpdate adds the store effects of an update: Service allocations
// taken and released.
func (s *Server) admitUpdate(ctx context.Context, res *resource, obj, old runtime.Object) (store.WriteOptions, error) {
	var opts store.WriteOptions
	if svc, ok := obj.(*corev1.Service); ok {
		extras, err := s.allocateService(ctx, svc, old.(*corev1.Service))
		if err != nil {
			return opts, err
		}
		opts.Extras = extras
	}
	return opts, nil
}

func namespaceHasFinalizers(obj runtime.Object) bool {
	ns, ok := obj.(*corev1.Namespace)
	return ok && len(ns.Spec.Finalizers) > 0
}

// gracefulPod reports a pod still inside its grace period: the kubelet
// deletes it when its containers have stopped.
func gracefulPod(obj runtime.Object) bool {
	pod, ok := obj.(*corev1.Pod)
	return ok && pod.DeletionGracePeriodSeconds != nil && *pod.DeletionGracePeriodSeconds > 0
}
