package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"kiln.dev/kiln/config"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/git"
)

// The plain-HTTP listener on dashboardListen. Its timeouts bound what a
// slow or idle client holds; the webhook's own body cap bounds memory.
const (
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	httpWriteTimeout      = 30 * time.Second
	httpIdleTimeout       = 2 * time.Minute
	// httpShutdownTimeout is how long requests in flight may take to
	// finish after ctx is done.
	httpShutdownTimeout = 5 * time.Second
)

// httpHandlers are what the dashboard listener serves; a nil handler is
// not mounted.
type httpHandlers struct {
	// webhooks serves reconcile.WebhookPath.
	webhooks http.Handler
	// dashboard serves every other path.
	dashboard http.Handler
}

// newHTTPMux mounts the handlers of the dashboard listener.
func newHTTPMux(h httpHandlers) *http.ServeMux {
	mux := http.NewServeMux()
	if h.webhooks != nil {
		mux.Handle(reconcile.WebhookPath, h.webhooks)
	}
	if h.dashboard != nil {
		mux.Handle("/", h.dashboard)
	}
	return mux
}

// newWebhookSource is the webhook of git source s: it triggers src, only
// for pushes to s.Ref when set, authenticated with the secret read from
// s.WebhookSecretFile if set.
func newWebhookSource(src *git.Source, s config.Source) (reconcile.WebhookSource, error) {
	secret, err := readTokenFile("webhookSecretFile", s.WebhookSecretFile)
	if err != nil {
		return reconcile.WebhookSource{}, err
	}
	ws := reconcile.WebhookSource{Trigger: src.Trigger, Branch: s.Ref}
	if secret != "" {
		ws.Secret = []byte(secret)
	}
	return ws, nil
}

// startHTTP serves the dashboard and the git sources' webhooks on
// cfg.DashboardListen in g until ctx is done; nothing is served when the
// dashboard is disabled. dash is nil when it is. It returns once the
// listener is bound (or failed to bind).
func startHTTP(ctx context.Context, g *errgroup.Group, cfg *config.Config, hooks map[string]reconcile.WebhookSource, dash http.Handler, log *slog.Logger) error {
	if cfg.Disabled(config.ComponentDashboard) {
		if len(hooks) > 0 {
			log.Info("webhooks not served: the dashboard is disabled")
		}
		return nil
	}
	ln, err := net.Listen("tcp", cfg.DashboardListen)
	if err != nil {
		return fmt.Errorf("dashboardListen: %w", err)
	}
	host, _, _ := net.SplitHostPort(cfg.DashboardListen)
	for name, h := range hooks {
		if len(h.Secret) == 0 && !isLoopback(host) {
			log.Warn("webhook without a secret on a non-loopback address; set webhookSecretFile", "source", name, "addr", ln.Addr().String())
		}
	}
	if dash != nil && cfg.DashboardTokenFile == "" && !isLoopback(host) {
		log.Warn("dashboard without a token on a non-loopback address; set dashboardTokenFile", "addr", ln.Addr().String())
	}
	handlers := httpHandlers{dashboard: dash}
	if len(hooks) > 0 {
		handlers.webhooks = reconcile.WebhookHandler(reconcile.WebhookConfig{Sources: hooks, Logger: log})
		log.Info("serving webhooks", "url", "http://"+ln.Addr().String()+reconcile.WebhookPath+"<source>", "sources", len(hooks))
	}
	log.Info("serving dashboard", "url", "http://"+ln.Addr().String()+"/")
	g.Go(func() error { return serveHTTP(ctx, ln, newHTTPMux(handlers), log) })
	return nil
}

// readTokenFile reads a token or secret file, trimming the newline
// `echo secret > file` leaves, which no client sends. An empty path means
// none. Errors name the file (a *PathError), never its contents.
func readTokenFile(field, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		return "", fmt.Errorf("%s %s is empty", field, path)
	}
	return tok, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// serveHTTP serves h on ln until ctx is done, then lets requests in
// flight finish for up to httpShutdownTimeout. It returns nil on a clean
// stop. The Serve goroutine has exited when it returns.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("http %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), httpShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		// Requests still running past the timeout are cut off.
		err = errors.Join(err, srv.Close())
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("http %s: shutdown: %w", ln.Addr(), err)
	}
	return nil
}
