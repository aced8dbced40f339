package apiserver

import (
	"fmt"
	"net/http"
	"net/http/httputil"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// handleExec serves pods/NAME/exec by proxying the request, and the
// WebSocket it upgrades to, to the kubelet of the pod's node, as
// kube-apiserver does for kubectl exec.
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	pod, target, err := s.kubeletTarget(r.Context(), ri, r.URL.Query(), "exec", func(pod *corev1.Pod) error {
		if p := pod.Status.Phase; p == corev1.PodSucceeded || p == corev1.PodFailed {
			return badRequest("cannot exec into a container in a completed pod; current phase is %s", p)
		}
		return nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	transport := s.cfg.KubeletClient.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			// The client's credentials are for the API server; the
			// kubelet client sends its own.
			pr.Out.Header.Del("Authorization")
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeError(w, apierrors.NewServiceUnavailable(fmt.Sprintf("kubelet of node %s: %v", pod.Spec.NodeName, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}
