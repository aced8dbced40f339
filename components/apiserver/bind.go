package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"kiln.dev/kiln/components/store"
)

// bindingGR names the conflicts of a binding, as kube's BindingREST does.
var bindingGR = schema.GroupResource{Resource: "pods/binding"}

// handleBinding is POST pods/NAME/binding (and POST bindings): it assigns
// an unbound pod to a node, as the scheduler does.
func (s *Server) handleBinding(w http.ResponseWriter, r *http.Request, ns, name string) {
	growStack()
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var b corev1.Binding
	if _, err := decodeBody(r, body, &b, corev1.SchemeGroupVersion.WithKind("Binding"), decodeOptions{fieldValidation: "Ignore"}); err != nil {
		writeError(w, err)
		return
	}
	if name == "" {
		name = b.Name
	}
	if b.Name != "" && b.Name != name {
		writeError(w, badRequest("the name of the binding (%s) does not match the pod (%s)", b.Name, name))
		return
	}
	if b.Target.Name == "" || (b.Target.Kind != "" && b.Target.Kind != "Node") {
		writeError(w, badRequest("a binding must target a Node by name"))
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.bind(r.Context(), ns, name, &b, dry); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

// bind sets the pod's spec.nodeName, merges the binding's annotations and
// sets the PodScheduled condition, as kube's BindingREST
// (setPodHostAndAnnotations) does: a read-modify-write of the stored pod
// that skips the pod update path. That path's defaulting, immutability
// checks and full validation cost more than the create they follow (the
// scheduler measured 1.5 creates per bind), and none of them can fail on
// an unbound pod gaining a node name and a condition. The binding's UID
// and resourceVersion are preconditions; a bound, gated or terminating pod
// is a 409. A write lost to a concurrent one re-reads and tries again.
func (s *Server) bind(ctx context.Context, ns, name string, b *corev1.Binding, dry bool) error {
	pods := s.byGVR[gvrKey{"", "v1", "pods"}]
	key := pods.key(ns, name)
	for attempt := 0; ; attempt++ {
		kv, err := s.store.Get(ctx, key)
		if err != nil {
			return storeError(err, pods.gr, name)
		}
		var pod corev1.Pod
		if err := unmarshalInto(kv.Value, &pod); err != nil {
			return fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if err := bindPod(&pod, formatRev(kv.ModRevision), b, metav1.NewTime(s.now().Truncate(1e9))); err != nil {
			return err
		}
		if dry {
			return nil
		}
		data, err := pods.encodeStored(&pod)
		if err != nil {
			return err
		}
		_, err = s.store.Update(ctx, key, data, kv.ModRevision, store.WriteOptions{})
		if errors.Is(err, store.ErrConflict) && attempt < maxUpdateRetries {
			continue
		}
		if err != nil {
			return storeError(err, pods.gr, name)
		}
		return nil
	}
}

// bindPod applies binding b to pod, stored at resourceVersion rv.
func bindPod(pod *corev1.Pod, rv string, b *corev1.Binding, now metav1.Time) error {
	if b.UID != "" && b.UID != pod.UID {
		return apierrors.NewConflict(corev1.Resource("pods"), pod.Name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", b.UID, pod.UID))
	}
	if b.ResourceVersion != "" && b.ResourceVersion != rv {
		return apierrors.NewConflict(corev1.Resource("pods"), pod.Name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", b.ResourceVersion, rv))
	}
	if pod.DeletionTimestamp != nil {
		return apierrors.NewConflict(bindingGR, pod.Name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", pod.Name))
	}
	if pod.Spec.NodeName != "" {
		return apierrors.NewConflict(bindingGR, pod.Name, fmt.Errorf("pod %s is already assigned to node %q", pod.Name, pod.Spec.NodeName))
	}
	if len(pod.Spec.SchedulingGates) != 0 {
		return apierrors.NewConflict(bindingGR, pod.Name, fmt.Errorf("pod %s has non-empty .spec.schedulingGates", pod.Name))
	}
	pod.Spec.NodeName = b.Target.Name
	if len(b.Annotations) > 0 && pod.Annotations == nil {
		pod.Annotations = make(map[string]string, len(b.Annotations))
	}
	for k, v := range b.Annotations {
		pod.Annotations[k] = v
	}
	updatePodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, now)
	return nil
}

// updatePodCondition sets condition c, as kube's podutil.UpdatePodCondition
// does: its transition time is now unless its status is unchanged.
func updatePodCondition(st *corev1.PodStatus, c corev1.PodCondition, now metav1.Time) {
	c.LastTransitionTime = now
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}
