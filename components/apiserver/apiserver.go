package apiserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"kiln.dev/kiln/components/apiserver/resources"
	"kiln.dev/kiln/components/store"
)

// Server is the API server.
type Server struct {
	cfg         Config
	log         logger
	store       *store.Store
	serviceCIDR netip.Prefix
	nodePorts   portRange
	clusterDNS  netip.Addr
	extra       map[string]http.Handler
	catalog     *resources.Catalog
	namespaces  namespaceCache
	caches      watchCaches
	graph       nodeGraph
	tokens      tokenCache
	rbacDecoded decodedRBAC
	byGVR       map[gvrKey]*resource
	ready       chan struct{}
	handler     http.Handler

	// now is the clock; a test seam.
	now func() time.Time

	mu      sync.Mutex
	started bool
	addr    string
}

type gvrKey struct{ group, version, resource string }

// New validates cfg and builds the server. It starts nothing.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	p, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:         cfg,
		log:         logger{cfg.Logger.With("component", "apiserver")},
		store:       cfg.Store,
		serviceCIDR: p.serviceCIDR,
		nodePorts:   p.nodePorts,
		clusterDNS:  p.clusterDNS,
		extra:       p.extra,
		catalog:     resources.NewCatalog(resources.Builtin()),
		byGVR:       map[gvrKey]*resource{},
		ready:       make(chan struct{}),
		now:         time.Now,
	}
	for _, r := range s.catalog.All() {
		s.byGVR[gvrKey{r.Group, r.Version, r.Name}] = newResource(r)
	}
	addConversions(s.byGVR)
	s.handler = s.routes()
	return s, nil
}

// Ready is closed once the server serves requests and the built-in
// namespaces, the kubernetes Service and (with ClusterDNS) kube-dns exist.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the address the server listens on; valid after Ready.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Handler serves the API without TLS or listening (for tests that bring
// their own server).
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves HTTPS until ctx is done. It waits for the store, creates the
// built-in objects, and returns nil on a clean stop.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrRunTwice
	}
	s.started = true
	s.mu.Unlock()

	select {
	case <-s.store.Ready():
	case <-ctx.Done():
		return nil
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("apiserver: listen: %w", err)
		}
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	if err := s.bootstrap(ctx); err != nil {
		ln.Close()
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.watchNamespaces(gctx) })
	s.caches.start(gctx)
	s.graph.start(gctx)
	g.Go(func() error {
		<-gctx.Done()
		s.graph.wait()
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.caches.wait()
		return nil
	})
	g.Go(func() error { return s.serve(gctx, ln) })
	close(s.ready)
	s.log.Info("serving", "addr", ln.Addr().String())
	return g.Wait()
}

// Serve serves the API on one more listener, with the same certificate
// and handler, until ctx is done: an address that exists only once the
// server runs, such as the one pods reach it on. It returns nil on a
// clean stop; call it after Ready.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		ln.Close()
		return nil
	}
	s.log.Info("serving", "addr", ln.Addr().String())
	return s.serve(ctx, ln)
}

// serve runs an HTTPS server on ln until ctx is done, then drains it.
func (s *Server) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{*s.cfg.TLS}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}},
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if s.cfg.ClientCAs != nil {
		srv.TLSConfig.ClientAuth = tls.RequestClientCert
		srv.ConnContext = withConnCert
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		// Watches end with ctx (BaseContext); give other requests a moment.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
	}()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("apiserver: serve %s: %w", ln.Addr(), err)
}

// routes builds the top-level handler: health, version and the CA
// certificate are open, everything else needs a bearer token or a client
// certificate. Config.Extra's handlers sit beside the API, outside its
// request metrics: they are other services sharing the port.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, p := range []string{"/healthz", "/livez", "/readyz"} {
		mux.HandleFunc(p, s.handleHealth)
	}
	mux.HandleFunc("/version", s.handleVersion)
	mux.HandleFunc("/cacerts", s.handleCACerts)
	authed := http.NewServeMux()
	authed.HandleFunc("/api", s.handleCoreDiscovery)
	authed.HandleFunc("/apis", s.handleGroupsDiscovery)
	authed.HandleFunc("/openapi/", s.handleOpenAPI)
	authed.HandleFunc("/api/", s.handleAPI)
	authed.HandleFunc("/apis/", s.handleAPI)
	mux.Handle("/", s.authenticate(authed))
	if len(s.extra) == 0 {
		return s.instrument(mux)
	}
	top := http.NewServeMux()
	top.Handle("/", s.instrument(mux))
	for prefix, h := range s.extra {
		top.Handle(prefix, s.authenticateExtra(h))
		top.Handle(prefix+"/", s.authenticateExtra(h))
	}
	return top
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/readyz") {
		select {
		case <-s.ready:
		default:
			writeRaw(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("not ready"))
			return
		}
	}
	writeRaw(w, http.StatusOK, "text/plain; charset=utf-8", []byte("ok"))
}

// Version is what /version reports. Minor 32 makes the kubectl dispatcher
// run kubectl 1.32, whose requests KUBE-API-CONTRACT.md measured.
var versionInfo = map[string]string{
	"major": "1", "minor": "32", "gitVersion": "v1.32.0+kiln", "gitCommit": "kiln",
	"gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": runtime.Version(),
	"compiler": runtime.Compiler, "platform": runtime.GOOS + "/" + runtime.GOARCH,
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, versionInfo)
}

type userKey struct{}

// user resolves the request's bearer token, else its client certificate
// (authn.go).
func (s *Server) user(r *http.Request) (User, bool) {
	if token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		token = strings.TrimSpace(token)
		if u, ok := s.cfg.Tokens[token]; ok {
			return u, true
		}
		if u, ok := s.serviceAccountUser(r.Context(), token); ok {
			return u, true
		}
	}
	return s.certUser(r)
}

// authenticate resolves the request's credentials to a user or answers
// 401.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.user(r)
		if !ok {
			writeError(w, apierrors.NewUnauthorized("Unauthorized"))
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// authenticateExtra is authenticate for Config.Extra's handlers, which
// also take the token as the password of basic authentication (what git
// sends from a credential helper or a URL's userinfo). Its 401 carries
// the challenges, without which git would not know to send a token, and
// a plain-text body for people.
func (s *Server) authenticateExtra(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := s.user(r)
		if !ok {
			// git's credential helpers answer a Basic challenge, with the
			// token as the password.
			if _, password, basic := r.BasicAuth(); basic {
				u, ok = s.cfg.Tokens[strings.TrimSpace(password)]
			}
		}
		if !ok {
			w.Header().Add("WWW-Authenticate", `Basic realm="kiln"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="kiln"`)
			http.Error(w, "Unauthorized: a token is required, as a bearer token or as the password of basic authentication", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// UserFrom returns the authenticated user of a request's context; ok is
// false outside an authenticated request. Config.Extra's handlers use it
// to decide what the user may do.
func UserFrom(ctx context.Context) (u User, ok bool) {
	u, ok = ctx.Value(userKey{}).(User)
	return u, ok
}

// userFrom is UserFrom for the API's handlers, which run only
// authenticated.
func userFrom(ctx context.Context) User {
	u, _ := UserFrom(ctx)
	return u
}
