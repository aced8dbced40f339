package apiserver

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// handleExec serves pods/NAME/exec by proxying the request, and the
// WebSocket it upgrades to, to the kubelet of the pod's node, as
// kube-apiserver does for kubectl exec.
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	s.proxyStream(w, r, ri, "exec", true, "exec into")
}

// handleAttach serves pods/NAME/attach likewise (kubectl attach, kubectl
// run -i): the kubelet joins the streams to the container's own.
func (s *Server) handleAttach(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	s.proxyStream(w, r, ri, "attach", true, "attach to")
}

// handlePortForward serves pods/NAME/portforward likewise, over SPDY:
// kubectl's first try, a WebSocket tunnel, is refused so that it falls
// back to SPDY.
func (s *Server) handlePortForward(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		writeError(w, badRequest("port forwarding is served over SPDY (portforward.k8s.io), not WebSocket"))
		return
	}
	s.proxyStream(w, r, ri, "portForward", false, "forward ports of")
}

// proxyStream proxies a streaming request and the connection it upgrades
// to, to the kubelet's endpoint for the pod (and container).
func (s *Server) proxyStream(w http.ResponseWriter, r *http.Request, ri requestInfo, endpoint string, perContainer bool, what string) {
	pod, target, err := s.kubeletTarget(r.Context(), ri, r.URL.Query(), endpoint, perContainer, func(pod *corev1.Pod) error {
		if p := pod.Status.Phase; p == corev1.PodSucceeded || p == corev1.PodFailed {
			return badRequest("cannot %s a container in a completed pod; current phase is %s", what, p)
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
