package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/config"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/hosted"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// hasHosted reports whether cfg syncs a hosted source, whose repository
// the API port serves under /git/.
func hasHosted(cfg *config.Config) bool {
	if cfg.Disabled(config.ComponentSync) {
		return false
	}
	for _, s := range cfg.Sources {
		if s.Kind == config.SourceKindHosted {
			return true
		}
	}
	return false
}

// lateHandler answers 503 until set: the API server's routes are fixed
// before the reconciler that pushes deploy through exists.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "1")
	http.Error(w, "kiln is starting", http.StatusServiceUnavailable)
}

// newGitHandler is the git server of the hosted sources: pushes are
// checked, applied and followed by rec. The API server has authenticated
// each request (Config.Extra); an access review of sources/<name>/git
// decides what the user may do (a push is an update).
func newGitHandler(srcs []*hosted.Source, rec *reconcile.Reconciler, rc *rest.Config, cfg *config.Config, st *store.Store, log *slog.Logger) (*hosted.Handler, error) {
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	userFrom := func(r *http.Request) (authenticationv1.UserInfo, bool) {
		u, ok := apiserver.UserFrom(r.Context())
		return authenticationv1.UserInfo{Username: u.Name, UID: u.UID, Groups: u.Groups}, ok
	}
	return hosted.NewHandler(hosted.HandlerConfig{Sources: srcs, Deployer: rec, Authorize: hosted.UserAuthorizer(kube, userFrom),
		PushWait: cfg.PushWait.Duration, Logger: log, Shared: sharedRepos{st}})
}

// sharedRepos is the hosted repositories' record in kiln's datastore, as
// the git server asks for it: with several servers on one datastore, any
// of them takes a push and each keeps a copy.
type sharedRepos struct{ st *store.Store }

func (s sharedRepos) PutPack(ctx context.Context, repo string, pack io.Reader) (string, error) {
	return s.st.PutHostedPack(ctx, repo, pack)
}

func (s sharedRepos) Pack(ctx context.Context, repo, id string) ([]byte, error) {
	return s.st.HostedPack(ctx, repo, id)
}

func (s sharedRepos) SwapRef(ctx context.Context, repo, ref, old, new string) (bool, error) {
	return s.st.SwapHostedRef(ctx, repo, ref, old, new)
}

func (s sharedRepos) State(ctx context.Context, repo string) (gitserver.SharedState, error) {
	hs, err := s.st.HostedState(ctx, repo)
	return gitserver.SharedState{Packs: hs.Packs, Refs: hs.Refs, Revision: hs.Revision}, err
}

// Changes coalesces the record's watch events into signals.
func (s sharedRepos) Changes(ctx context.Context, repo string, from int64) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for ev := range s.st.WatchHosted(ctx, repo, from) {
			switch ev.Type {
			case store.Error:
				return
			case store.Progress:
				continue
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
