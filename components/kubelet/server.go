package kubelet

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// How long token decisions are cached, as the kubelet's webhook
// authenticator and authorizer do (2 min allowed, 30 s denied).
const (
	authAllowTTL = 2 * time.Minute
	authDenyTTL  = 30 * time.Second
	// authCacheMax bounds the cache; it is emptied when full.
	authCacheMax = 1024
)

// newServer builds the kubelet's HTTPS server: /healthz, open to all,
// and /containerLogs/..., /exec/... and /portForward/..., for
// authenticated and authorized callers.
func (k *Kubelet) newServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("GET /containerLogs/{namespace}/{pod}/{container}", k.auth.wrap(http.HandlerFunc(k.handleContainerLogs)))
	// kubectl exec's WebSocket is a GET; SPDY clients POST.
	mux.Handle("GET /exec/{namespace}/{pod}/{container}", k.auth.wrap(http.HandlerFunc(k.handleExec)))
	mux.Handle("POST /exec/{namespace}/{pod}/{container}", k.auth.wrap(http.HandlerFunc(k.handleExec)))
	mux.Handle("GET /stats/resource", k.auth.wrap(http.HandlerFunc(k.handleResourceStats)))
	mux.Handle("GET /attach/{namespace}/{pod}/{container}", k.auth.wrap(http.HandlerFunc(k.handleAttach)))
	mux.Handle("POST /attach/{namespace}/{pod}/{container}", k.auth.wrap(http.HandlerFunc(k.handleAttach)))
	mux.Handle("GET /portForward/{namespace}/{pod}", k.auth.wrap(http.HandlerFunc(k.handlePortForward)))
	mux.Handle("POST /portForward/{namespace}/{pod}", k.auth.wrap(http.HandlerFunc(k.handlePortForward)))
	return &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{*k.cfg.TLS}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
	}
}

// authenticator checks bearer tokens: Config.Authenticate when set, else
// a TokenReview then a SubjectAccessReview (get nodes/proxy on this node)
// against the API server, with the answers cached.
type authenticator struct {
	client kubernetes.Interface
	node   string
	check  func(string) bool

	mu    sync.Mutex
	cache map[[sha256.Size]byte]authEntry
}

type authEntry struct {
	ok      bool
	expires time.Time
}

func newAuthenticator(client kubernetes.Interface, node string, check func(string) bool) *authenticator {
	return &authenticator{client: client, node: node, check: check, cache: map[[sha256.Size]byte]authEntry{}}
}

func (a *authenticator) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		allowed, err := a.allowed(r.Context(), token)
		switch {
		case err != nil:
			http.Error(w, "authentication failed: "+err.Error(), http.StatusInternalServerError)
		case !allowed:
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// allowed decides for a token, from the cache when it can. The cache is
// keyed by the token's hash, so it holds no credential.
func (a *authenticator) allowed(ctx context.Context, token string) (bool, error) {
	if a.check != nil {
		return a.check(token), nil
	}
	key := sha256.Sum256([]byte(token))
	now := time.Now()
	a.mu.Lock()
	if e, ok := a.cache[key]; ok && now.Before(e.expires) {
		a.mu.Unlock()
		return e.ok, nil
	}
	a.mu.Unlock()
	ok, err := a.review(ctx, token)
	if err != nil {
		return false, err
	}
	ttl := authDenyTTL
	if ok {
		ttl = authAllowTTL
	}
	a.mu.Lock()
	if len(a.cache) >= authCacheMax {
		clear(a.cache)
	}
	a.cache[key] = authEntry{ok: ok, expires: now.Add(ttl)}
	a.mu.Unlock()
	return ok, nil
}

func (a *authenticator) review(ctx context.Context, token string) (bool, error) {
	tr, err := a.client.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("token review: %w", err)
	}
	if !tr.Status.Authenticated {
		return false, nil
	}
	u := tr.Status.User
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range u.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: a.node},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	return sar.Status.Allowed, nil
}

// logRequest is a parsed containerLogs query, as the kubelet reads
// PodLogOptions.
type logRequest struct {
	follow, previous, timestamps bool
	tailLines                    int64 // -1: all
	limitBytes                   int64 // 0: no limit
	since                        time.Time
}

func parseLogRequest(r *http.Request) (logRequest, error) {
	q := r.URL.Query()
	lr := logRequest{tailLines: -1}
	var err error
	parseBool := func(name string) bool {
		v := q.Get(name)
		if v == "" {
			return false
		}
		b, perr := strconv.ParseBool(v)
		if perr != nil && err == nil {
			err = fmt.Errorf("%s=%q: not a boolean", name, v)
		}
		return b
	}
	lr.follow, lr.previous, lr.timestamps = parseBool("follow"), parseBool("previous"), parseBool("timestamps")
	if err != nil {
		return lr, err
	}
	if v := q.Get("tailLines"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return lr, fmt.Errorf("tailLines=%q: want a non-negative integer", v)
		}
		lr.tailLines = n
	}
	if v := q.Get("limitBytes"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n <= 0 {
			return lr, fmt.Errorf("limitBytes=%q: want a positive integer", v)
		}
		lr.limitBytes = n
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n <= 0 {
			return lr, fmt.Errorf("sinceSeconds=%q: want a positive integer", v)
		}
		lr.since = time.Now().Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, perr := time.Parse(time.RFC3339, v)
		if perr != nil {
			return lr, fmt.Errorf("sinceTime=%q: want an RFC 3339 time", v)
		}
		lr.since = t
	}
	return lr, nil
}

// handleContainerLogs serves GET /containerLogs/<ns>/<pod>/<container>:
// the log of the container's current (or, with previous, its last
// terminated) instance as plain text.
func (k *Kubelet) handleContainerLogs(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	lr, err := parseLogRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod, pr, ok := k.servedPod(w, r)
	if !ok {
		return
	}
	target := pr.latest(container)
	if lr.previous {
		target = pr.previous(container)
		if target == nil {
			http.Error(w, fmt.Sprintf("previous terminated container %q in pod %q not found", container, name), http.StatusBadRequest)
			return
		}
	}
	if target == nil {
		reason := "ContainerCreating"
		for _, s := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
			if s.Name == container && s.State.Waiting != nil && s.State.Waiting.Reason != "" {
				reason = s.State.Waiting.Reason
			}
		}
		http.Error(w, fmt.Sprintf("container %q in pod %q is waiting to start: %s", container, name, reason), http.StatusBadRequest)
		return
	}
	path := target.LogPath
	if path == "" {
		path = k.logPath(pod.UID, container, target.Attempt)
	}
	running := func(ctx context.Context) bool {
		cs, err := k.rt.ContainerStatus(ctx, target.ID)
		return err == nil && (cs.State == runtime.ContainerRunning || cs.State == runtime.ContainerCreated)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := serveLog(r.Context(), w, path, lr, running); err != nil && !errors.Is(err, context.Canceled) {
		k.log.Debug("serving log", logKeyPod, ns+"/"+name, logKeyContainer, container, logKeyError, err)
	}
}

// servedPod finds the pod (and container, when the path has one) a
// request's path names and what the runtime holds of it; it answers the
// request itself when it cannot.
func (k *Kubelet) servedPod(w http.ResponseWriter, r *http.Request) (*corev1.Pod, *podRuntime, bool) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	obj, ok, _ := k.podInformer.GetIndexer().GetByKey(ns + "/" + name)
	if !ok {
		http.Error(w, fmt.Sprintf("pod %s/%s not found", ns, name), http.StatusNotFound)
		return nil, nil, false
	}
	pod := obj.(*corev1.Pod)
	if container != "" && findContainer(pod, container) == nil {
		http.Error(w, fmt.Sprintf("container %s is not valid for pod %s", container, name), http.StatusNotFound)
		return nil, nil, false
	}
	pr, err := k.inspect(r.Context(), pod.UID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return nil, nil, false
	}
	return pod, pr, true
}
