package apiserver

import (
	"context"
	"errors"
	"iter"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"

	"kiln.dev/kiln/components/apiserver/admission"
	"kiln.dev/kiln/components/store"
)

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	if ri.name != "" {
		writeError(w, apierrors.NewMethodNotSupported(res.gr, "create"))
		return
	}
	if isReview(res) {
		s.handleReview(w, r, res, ri)
		return
	}
	if res.Group == "" && res.Name == "bindings" {
		s.handleBinding(w, r, ri.namespace, "")
		return
	}
	obj, warnings, dry, err := readObject(w, r, res)
	if err != nil {
		writeError(w, err)
		return
	}
	m := accessor(obj)
	if m.GetResourceVersion() != "" {
		writeError(w, badRequest("resourceVersion should not be set on objects to be created"))
		return
	}
	if err := checkNamespace(res, m, ri.namespace); err != nil {
		writeError(w, err)
		return
	}
	out, stored, err := s.create(r.Context(), res, obj, dry)
	if err != nil {
		writeError(w, err)
		return
	}
	addWarnings(w, warnings)
	writeObject(w, r, http.StatusCreated, out, stored)
}

// checkNamespace fills in the request's namespace and refuses a body that
// names another one.
func checkNamespace(res *resource, m metav1.Object, ns string) error {
	if !res.Namespaced {
		if m.GetNamespace() != "" {
			m.SetNamespace("")
		}
		return nil
	}
	if m.GetNamespace() == "" {
		m.SetNamespace(ns)
	}
	if m.GetNamespace() != ns {
		return badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	return nil
}

// maxCreateRetries bounds a create's retries after a generated name that
// exists or a Service allocation lost to a concurrent write. Each retry
// re-reads the allocations and picks at random among the free ones, so
// running out takes that many losses in a row.
const maxCreateRetries = 10

// create admits and stores a new object. With dryRun it does everything
// but write. It returns the object and, unless dry, its stored JSON.
func (s *Server) create(ctx context.Context, res *resource, obj runtime.Object, dry bool) (runtime.Object, *storedObject, error) {
	if res.conv == nil {
		return s.createStored(ctx, res, obj, dry)
	}
	// Admit and store at the storage version; answer at the request's.
	in, err := res.toStorage(obj)
	if err != nil {
		return nil, nil, err
	}
	out, _, err := s.createStored(ctx, res.conv.storage, in, dry)
	if err != nil {
		return nil, nil, err
	}
	out, err = res.fromStorage(out)
	return out, nil, err
}

// createStored is create at the version res stores.
func (s *Server) createStored(ctx context.Context, res *resource, obj runtime.Object, dry bool) (runtime.Object, *storedObject, error) {
	m := accessor(obj)
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	if err := s.checkNamespaceActive(ctx, res, m.GetNamespace()); err != nil {
		return nil, nil, err
	}
	s.prepareCreate(res, obj)
	if pod, ok := obj.(*corev1.Pod); ok {
		if err := s.mountServiceAccountToken(ctx, pod); err != nil {
			return nil, nil, err
		}
	}
	if pvc, ok := obj.(*corev1.PersistentVolumeClaim); ok {
		if err := s.admitStorageClass(ctx, pvc); err != nil {
			return nil, nil, err
		}
	}
	if err := s.admitIngressClass(ctx, obj); err != nil {
		return nil, nil, err
	}
	// A Service's retry starts again from what the client sent: the
	// ClusterIP and NodePorts the lost attempt picked would otherwise read
	// as the client's own choice and be refused as already allocated.
	var sent runtime.Object
	if _, ok := obj.(*corev1.Service); ok {
		sent = obj.DeepCopyObject()
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && sent != nil {
			obj = sent.DeepCopyObject()
			m = accessor(obj)
		}
		if generated {
			m.SetName(generateName(m.GetGenerateName()))
		}
		if errs := admission.Validate(obj, res.Namespaced); len(errs) > 0 {
			return nil, nil, invalid(res.gk, m.GetName(), errs)
		}
		if err := admitNode(userFrom(ctx), res, obj); err != nil {
			return nil, nil, err
		}
		opts, err := s.admitCreate(ctx, res, obj)
		if err != nil {
			return nil, nil, err
		}
		if dry {
			return obj, nil, nil
		}
		data, err := res.encodeStored(obj)
		if err != nil {
			return nil, nil, err
		}
		rev, err := s.store.Create(ctx, res.key(m.GetNamespace(), m.GetName()), data, opts)
		if generated && errors.Is(err, store.ErrExists) && attempt < maxCreateRetries {
			continue
		}
		var pe *store.PreconditionError
		if errors.As(err, &pe) {
			if !pe.Exists {
				return nil, nil, apierrors.NewNotFound(corev1.Resource("namespaces"), m.GetNamespace())
			}
			if attempt < maxCreateRetries {
				// Another write took an IP or port between our read of
				// the allocations and this write: pick again, or, if
				// the client chose it, refuse it as allocated.
				continue
			}
			return nil, nil, apierrors.NewConflict(res.gr, m.GetName(), errors.New("allocation conflict, try again"))
		}
		if err != nil {
			return nil, nil, storeError(err, res.gr, m.GetName())
		}
		m.SetResourceVersion(formatRev(rev))
		return obj, &storedObject{data: data, rev: rev}, nil
	}
}

// prepareCreate sets what the server owns in a new object, as kube's
// BeforeCreate does.
func (s *Server) prepareCreate(res *resource, obj runtime.Object) {
	m := accessor(obj)
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.NewTime(s.now().Truncate(1e9)))
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetManagedFields(nil)
	m.SetSelfLink("")
	if res.hasSpec {
		m.SetGeneration(1)
	} else {
		m.SetGeneration(0)
	}
	// Status is the controllers' to write; a new object starts without one
	// (nodes post their own, as the kubelet does in kube).
	if res.statusSub && !(res.Group == "" && res.Name == "nodes") {
		clearStatus(obj)
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		pod.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: podQOS(pod)}
		admitPod(pod, s.cfg.DefaultNotReadyTolerationSeconds, s.cfg.DefaultUnreachableTolerationSeconds)
	}
	admission.Default(obj)
}

func nsKey(ns string) string { return store.Key("", "namespaces", "", ns) }

// admitCreate adds the store conditions of a create: the namespace must
// exist, Events expire, Services take their allocations.
func (s *Server) admitCreate(ctx context.Context, res *resource, obj runtime.Object) (store.WriteOptions, error) {
	var opts store.WriteOptions
	m := accessor(obj)
	if res.Namespaced {
		opts.Require = []string{nsKey(m.GetNamespace())}
	}
	if res.Group == "" && res.Name == "events" || res.Group == "events.k8s.io" {
		opts.TTL = s.cfg.EventTTL
	}
	if svc, ok := obj.(*corev1.Service); ok {
		extras, err := s.allocateService(ctx, svc, nil)
		if err != nil {
			return opts, err
		}
		opts.Extras = extras
	}
	return opts, nil
}

// podQOS is the pod's QoS class, as kube computes it for status.qosClass.
func podQOS(pod *corev1.Pod) corev1.PodQOSClass {
	requests, limits := 0, 0
	guaranteed := true
	for c := range allContainers(pod) {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if hasReq && !req.IsZero() {
				requests++
			}
			if hasLim && !lim.IsZero() {
				limits++
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// allContainers yields the pod's init and app containers in place;
// copying them (about 1 KB each) cost more than the QoS computation.
func allContainers(pod *corev1.Pod) iter.Seq[*corev1.Container] {
	return func(yield func(*corev1.Container) bool) {
		for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range cs {
				if !yield(&cs[i]) {
					return
				}
			}
		}
	}
}

// admitPod does what kube's ServiceAccount and DefaultTolerationSeconds
// admission plugins do to a new pod: a pod that does not tolerate the
// not-ready and unreachable NoExecute taints itself stays on such a node
// for notReady and unreachable seconds before eviction.
func admitPod(pod *corev1.Pod, notReady, unreachable int64) {
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	for _, d := range []struct {
		taint string
		secs  int64
	}{{corev1.TaintNodeNotReady, notReady}, {corev1.TaintNodeUnreachable, unreachable}} {
		taint, secs := d.taint, d.secs
		has := false
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == taint || t.Key == "" && t.Operator == corev1.TolerationOpExists) && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") {
				has = true
			}
		}
		if !has {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{Key: taint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &secs})
		}
	}
}

// generateName appends 5 random characters to base, cut so the name fits
// 63 characters, as kube's SimpleNameGenerator does.
func generateName(base string) string {
	const maxGeneratedNameLength = 63 - 5
	if len(base) > maxGeneratedNameLength {
		base = base[:maxGeneratedNameLength]
	}
	return base + utilrand.String(5)
}
