package gitserver

import (
	"compress/gzip"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// maxUploadRequestBytes bounds a fetch request (wants and haves, about 50
// bytes each): a clone of a large history sends a few thousand haves.
const maxUploadRequestBytes = 16 << 20

// Server serves the repositories of its Config. Create it with New; it
// is an http.Handler to mount at PathPrefix.
type Server struct {
	cfg   Config
	log   *slog.Logger
	repos map[string]*repo
}

// repo is one served repository and its push lock.
type repo struct {
	name string
	Repository
	// mu is held while a push compares, checks, moves and applies its
	// refs, so that pushes to one repository take turns.
	mu sync.Mutex
}

var _ http.Handler = (*Server)(nil)

// New checks cfg and returns a Server. It touches no repository.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPushBytes == 0 {
		cfg.MaxPushBytes = DefaultMaxPushBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With(logKeyComponent, "gitserver"), repos: map[string]*repo{}}
	for name, r := range cfg.Repositories {
		s.repos[name] = &repo{name: name, Repository: r}
	}
	return s, nil
}

// ServeHTTP routes a smart HTTP request to its repository and service.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	name, action, found := strings.Cut(rest, "/")
	name = strings.TrimSuffix(name, ".git")
	rp := s.repos[name]
	if !ok || !found || rp == nil {
		// The name is not echoed: it is the caller's input.
		http.Error(w, "repository not found", http.StatusNotFound)
		return
	}
	var service string
	switch {
	case action == "info/refs" && r.Method == http.MethodGet:
		service = r.URL.Query().Get("service")
		if service != serviceUploadPack && service != serviceReceivePack {
			// Without service=, git falls back to the dumb protocol.
			http.Error(w, "only the smart HTTP protocol is served; use git 1.6.6 or later", http.StatusForbidden)
			return
		}
	case (action == serviceUploadPack || action == serviceReceivePack) && r.Method == http.MethodPost:
		service = action
		if r.Header.Get("Content-Type") != "application/x-"+service+"-request" {
			http.Error(w, "unexpected content type", http.StatusUnsupportedMediaType)
			return
		}
	case action == "info/refs" || action == serviceUploadPack || action == serviceReceivePack:
		w.Header().Set("Allow", map[bool]string{true: http.MethodGet, false: http.MethodPost}[action == "info/refs"])
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	default:
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	user, err := s.cfg.Authorize(r, name, service == serviceReceivePack)
	if err != nil {
		s.refuse(w, rp, err)
		return
	}
	w.Header().Set("Cache-Control", "no-cache, max-age=0, must-revalidate")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if action == "info/refs" {
		s.serveRefs(w, rp, service)
		return
	}
	if service == serviceReceivePack {
		// The limit counts the body as sent, before any gzip.
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxPushBytes)
	}
	body := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		// git compresses large fetch requests.
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	if service == serviceUploadPack {
		s.uploadPack(w, r, rp, io.LimitReader(body, maxUploadRequestBytes))
		return
	}
	s.receivePack(w, r, rp, user, body)
}

// refuse answers a request Authorize refused.
func (s *Server) refuse(w http.ResponseWriter, rp *repo, err error) {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		// git asks its credential helper on a Basic challenge; a token
		// works as the password (or with http.extraHeader as Bearer).
		w.Header().Set("WWW-Authenticate", `Basic realm="kiln"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
	case errors.Is(err, ErrForbidden):
		http.Error(w, "forbidden", http.StatusForbidden)
	default:
		s.log.Warn("authorize git request", logKeyRepo, rp.name, logKeyErr, err)
		http.Error(w, "authorization unavailable", http.StatusServiceUnavailable)
	}
}

// serveRefs answers info/refs for service.
func (s *Server) serveRefs(w http.ResponseWriter, rp *repo, service string) {
	st := open(rp.Dir)
	defer st.Close()
	ad, err := readRefs(st)
	if err != nil {
		s.log.Warn("read refs", logKeyRepo, rp.name, logKeyErr, err)
		http.Error(w, "cannot read the repository", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-"+service+"-advertisement")
	_, _ = w.Write(advertisement(service, ad))
}
