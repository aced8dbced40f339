package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func (s *Server) handleSubresource(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	sr, ok := res.Subresource(ri.subresource)
	if !ok || ri.name == "" {
		writeError(w, apierrors.NewNotFound(res.gr, ri.name+"/"+ri.subresource))
		return
	}
	if !allowed(sr.Verbs, ri.verb) {
		writeError(w, apierrors.NewMethodNotSupported(res.gr, ri.verb+" "+ri.subresource))
		return
	}
	switch {
	case ri.subresource == "status":
		switch ri.verb {
		case "get":
			s.handleGet(w, r, res, ri)
		case "update":
			s.handleUpdate(w, r, res, ri, "status")
		case "patch":
			s.handlePatch(w, r, res, ri, "status")
		}
	case ri.subresource == "scale":
		s.handleScale(w, r, res, ri)
	case res.Group == "" && res.Name == "pods" && ri.subresource == "binding":
		s.handleBinding(w, r, ri.namespace, ri.name)
	case res.Group == "" && res.Name == "pods" && ri.subresource == "log":
		s.handleLog(w, r, ri)
	case res.Group == "" && res.Name == "pods" && ri.subresource == "exec":
		s.handleExec(w, r, ri)
	case res.Group == "" && res.Name == "pods" && ri.subresource == subEphemeralContainers:
		switch ri.verb {
		case "get":
			s.handleGet(w, r, res, ri)
		case "update":
			s.handleUpdate(w, r, res, ri, subEphemeralContainers)
		case "patch":
			s.handlePatch(w, r, res, ri, subEphemeralContainers)
		default:
			writeError(w, apierrors.NewMethodNotSupported(res.gr, ri.verb+" "+ri.subresource))
		}
	case res.Group == "" && res.Name == "pods" && ri.subresource == "attach":
		s.handleAttach(w, r, ri)
	case res.Group == "" && res.Name == "pods" && ri.subresource == "portforward":
		s.handlePortForward(w, r, ri)
	case res.Group == "" && res.Name == "serviceaccounts" && ri.subresource == "token":
		s.handleTokenRequest(w, r, ri)
	case res.Group == "" && res.Name == "namespaces" && ri.subresource == "finalize":
		s.handleFinalize(w, r, res, ri)
	default:
		writeError(w, apierrors.NewMethodNotSupported(res.gr, ri.verb+" "+ri.subresource))
	}
}

// toScale reads the Scale view of a workload: spec.replicas,
// status.replicas and the selector as a string.
func toScale(res *resource, obj runtime.Object) (*autoscalingv1.Scale, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	m := accessor(obj)
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp()},
	}
	if n, ok, _ := unstructured.NestedInt64(u, "spec", "replicas"); ok {
		sc.Spec.Replicas = int32(n)
	}
	if n, ok, _ := unstructured.NestedInt64(u, "status", "replicas"); ok {
		sc.Status.Replicas = int32(n)
	}
	if sel, ok, _ := unstructured.NestedMap(u, "spec", "selector"); ok {
		if res.Name == "replicationcontrollers" {
			ls := map[string]string{}
			for k, v := range sel {
				ls[k], _ = v.(string)
			}
			sc.Status.Selector = metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: ls})
		} else {
			var ls metav1.LabelSelector
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(sel, &ls); err == nil {
				if s, err := metav1.LabelSelectorAsSelector(&ls); err == nil {
					sc.Status.Selector = s.String()
				}
			}
		}
	}
	return sc, nil
}

func setReplicas(obj runtime.Object, n int32) (runtime.Object, error) {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if err := unstructured.SetNestedField(u, int64(n), "spec", "replicas"); err != nil {
		return nil, err
	}
	out := obj.DeepCopyObject()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Server) handleScale(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	ctx := r.Context()
	if ri.verb == "get" {
		kv, err := s.store.Get(ctx, res.key(ri.namespace, ri.name))
		if err != nil {
			writeError(w, storeError(err, res.gr, ri.name))
			return
		}
		obj, err := res.decodeStored(kv)
		if err == nil {
			var sc *autoscalingv1.Scale
			if sc, err = toScale(res, obj); err == nil {
				writeJSON(w, http.StatusOK, sc)
				return
			}
		}
		writeError(w, err)
		return
	}
	dry, err := dryRun(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	ct := contentType(r)
	var after *autoscalingv1.Scale
	out, _, err := s.update(ctx, res, ri.namespace, ri.name, "", dry, true, func(old runtime.Object) (runtime.Object, error) {
		cur, err := toScale(res, old)
		if err != nil {
			return nil, err
		}
		want := &autoscalingv1.Scale{}
		if ri.verb == "update" {
			if _, err := decodeBody(r, body, want, autoscalingv1.SchemeGroupVersion.WithKind("Scale"), decodeOptions{fieldValidation: "Strict"}); err != nil {
				return nil, err
			}
		} else {
			orig, _ := json.Marshal(cur)
			patch, err := bodyToJSON(ct, body)
			if err != nil {
				return nil, err
			}
			patched, err := applyPatch(ct, orig, patch, &autoscalingv1.Scale{})
			if err != nil {
				return nil, err
			}
			if _, err := decodeJSON(patched, want, autoscalingv1.SchemeGroupVersion.WithKind("Scale"), decodeOptions{fieldValidation: "Strict"}); err != nil {
				return nil, err
			}
		}
		if want.ResourceVersion != "" && want.ResourceVersion != cur.ResourceVersion {
			return nil, apierrors.NewConflict(res.gr, ri.name, errors.New(registryConflictMsg))
		}
		if want.Spec.Replicas < 0 {
			return nil, invalid(autoscalingv1.SchemeGroupVersion.WithKind("Scale").GroupKind(), ri.name,
				field.ErrorList{field.Invalid(field.NewPath("spec", "replicas"), want.Spec.Replicas, "must be greater than or equal to 0")})
		}
		next, err := setReplicas(old, want.Spec.Replicas)
		if err != nil {
			return nil, err
		}
		accessor(next).SetResourceVersion("")
		return next, nil
	})
	if err == nil {
		after, err = toScale(res, out)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, after)
}

// handleFinalize is PUT namespaces/NAME/finalize: it sets only
// spec.finalizers; the namespace goes once none remain.
func (s *Server) handleFinalize(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	var ns corev1.Namespace
	if _, err := decodeBody(r, body, &ns, corev1.SchemeGroupVersion.WithKind("Namespace"), decodeOptions{fieldValidation: "Ignore"}); err != nil {
		writeError(w, err)
		return
	}
	out, _, err := s.update(r.Context(), res, "", ri.name, "finalize", false, ns.ResourceVersion == "", func(old runtime.Object) (runtime.Object, error) {
		cur := old.(*corev1.Namespace)
		cur.Spec.Finalizers = ns.Spec.Finalizers
		cur.ResourceVersion = ns.ResourceVersion
		return cur, nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// handleLog serves pods/NAME/log by proxying to the kubelet of the pod's
// node, as kube-apiserver does.
func (s *Server) handleLog(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	ctx := r.Context()
	pods := s.byGVR[gvrKey{"", "v1", "pods"}]
	pod, target, err := s.kubeletTarget(ctx, ri, r.URL.Query(), "containerLogs", true, nil)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.cfg.KubeletClient.Do(req)
	if err != nil {
		writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("kubelet of node %s: %v", pod.Spec.NodeName, err)))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		writeError(w, apierrors.NewGenericServerResponse(resp.StatusCode, "get", pods.gr, pod.Name, string(msg), 0, false))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// kubeletTarget reads the pod a log, exec or port-forward request names
// and returns the URL of its endpoint on the pod's kubelet:
// /<endpoint>/<ns>/<pod>[/<container>], with the request's query but its
// container parameter. check, when set, may refuse the pod first.
func (s *Server) kubeletTarget(ctx context.Context, ri requestInfo, q url.Values, endpoint string, perContainer bool, check func(*corev1.Pod) error) (*corev1.Pod, *url.URL, error) {
	pods := s.byGVR[gvrKey{"", "v1", "pods"}]
	kv, err := s.store.Get(ctx, pods.key(ri.namespace, ri.name))
	if err != nil {
		return nil, nil, storeError(err, pods.gr, ri.name)
	}
	obj, err := pods.decodeStored(kv)
	if err != nil {
		return nil, nil, err
	}
	pod := obj.(*corev1.Pod)
	if check != nil {
		if err := check(pod); err != nil {
			return nil, nil, err
		}
	}
	path := fmt.Sprintf("/%s/%s/%s", endpoint, pod.Namespace, pod.Name)
	if perContainer {
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			return nil, nil, err
		}
		path += "/" + container
	} else if pod.Spec.NodeName == "" {
		return nil, nil, badRequest("pod %q is not scheduled yet", pod.Name)
	}
	target, err := s.kubeletURL(ctx, pod.Spec.NodeName)
	if err != nil {
		return nil, nil, err
	}
	if s.cfg.KubeletClient == nil {
		return nil, nil, apierrors.NewServiceUnavailable("no kubelet client is configured")
	}
	q.Del("container")
	target.Path = path
	target.RawQuery = q.Encode()
	return pod, target, nil
}

// podContainer is the container a log or exec request names, or the
// pod's only one; an error says which to choose.
func podContainer(pod *corev1.Pod, container string) (string, error) {
	if container == "" {
		if len(pod.Spec.Containers) != 1 {
			names := make([]string, len(pod.Spec.Containers))
			for i, c := range pod.Spec.Containers {
				names[i] = c.Name
			}
			return "", badRequest("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		}
		container = pod.Spec.Containers[0].Name
	}
	if !hasContainer(pod, container) {
		return "", badRequest("container %s is not valid for pod %s", container, pod.Name)
	}
	if pod.Spec.NodeName == "" {
		return "", badRequest("container %q in pod %q is waiting to start: the pod is not scheduled yet", container, pod.Name)
	}
	return container, nil
}

// hasContainer reports whether pod has a container name, of any kind
// (logs, exec and attach reach ephemeral ones too, as kubectl debug does).
func hasContainer(pod *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range cs {
			if c.Name == name {
				return true
			}
		}
	}
	for _, ec := range pod.Spec.EphemeralContainers {
		if ec.Name == name {
			return true
		}
	}
	return false
}

// kubeletURL is the base URL of a node's kubelet from its status.
func (s *Server) kubeletURL(ctx context.Context, node string) (*url.URL, error) {
	nodes := s.byGVR[gvrKey{"", "v1", "nodes"}]
	kv, err := s.store.Get(ctx, nodes.key("", node))
	if err != nil {
		return nil, storeError(err, nodes.gr, node)
	}
	obj, err := nodes.decodeStored(kv)
	if err != nil {
		return nil, err
	}
	return nodeKubeletURL(obj.(*corev1.Node))
}

// nodeKubeletURL is where node n's kubelet serves, from its status.
func nodeKubeletURL(n *corev1.Node) (*url.URL, error) {
	node := n.Name
	port := n.Status.DaemonEndpoints.KubeletEndpoint.Port
	var host string
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range n.Status.Addresses {
			if a.Type == t && host == "" {
				host = a.Address
			}
		}
	}
	if host == "" || port == 0 {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("node %s reports no kubelet address", node))
	}
	return &url.URL{Scheme: "https", Host: host + ":" + strconv.Itoa(int(port))}, nil
}
