package dashboard

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/reconcile"
)

// Dashboard is the read-only web UI. Its handler serves from informer
// caches that Run keeps up to date.
type Dashboard struct {
	cfg     Config
	log     *slog.Logger
	cache   *cache
	health  healthCache
	logs    *logCache
	hub     *hub
	metrics *metrics
	pages   map[string]*template.Template
	handler http.Handler

	mu      sync.Mutex
	started bool
}

// New validates cfg and builds the dashboard: informers are registered,
// templates parsed, nothing started.
func New(cfg Config) (*Dashboard, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Dashboard{cfg: cfg, log: cfg.Logger.With("component", "dashboard"),
		hub: newHub(cfg.Throttle, cfg.MaxStreams), logs: &logCache{client: cfg.Client, lines: cfg.LogLines}}
	c, err := newCache(cfg.Client, cfg.Dynamic, d.log)
	if err != nil {
		return nil, err
	}
	d.cache = c
	if d.metrics, err = newMetrics(c.sourceList); err != nil {
		return nil, err
	}
	c.onChange = d.hub.changed
	c.onSource = d.metrics.observeSource
	c.onPod = d.metrics.observePod
	c.onDelete = func(m metav1.Object) {
		d.health.forget(m.GetUID())
		switch o := m.(type) {
		case *corev1.Pod:
			d.metrics.forgetPod(o.UID)
		case *reconcile.Source:
			d.metrics.forgetSource(o.Name)
		}
	}
	if d.pages, err = d.parseTemplates(); err != nil {
		return nil, err
	}
	if d.handler, err = d.routes(); err != nil {
		return nil, err
	}
	return d, nil
}

// Run keeps the caches up to date and pushes live updates until ctx is
// done. It returns nil on a clean stop, once every goroutine it started
// has exited; the open live-update streams end with it.
func (d *Dashboard) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return ErrRunTwice
	}
	d.started = true
	d.mu.Unlock()
	d.log.Info("starting")
	var wg sync.WaitGroup
	wg.Go(func() { d.hub.run(ctx) })
	d.cache.run(ctx)
	wg.Wait()
	d.log.Info("stopped")
	return nil
}

// Ready is closed once Run has read the cluster: until then the pages
// say they are loading.
func (d *Dashboard) Ready() <-chan struct{} { return d.cache.ready }

// Handler serves every page, /api/status, /metrics, /events/stream and
// the static assets; every method but GET and HEAD is refused with 405.
// The git webhooks are not among its routes: cmd mounts them beside it.
func (d *Dashboard) Handler() http.Handler { return d.handler }

func (d *Dashboard) routes() (http.Handler, error) {
	static, err := staticHandler()
	if err != nil {
		return nil, err
	}
	gatherer := prometheus.Gatherer(d.metrics.registry)
	if d.cfg.Gatherer != nil {
		gatherer = prometheus.Gatherers{d.metrics.registry, d.cfg.Gatherer}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.handleOverview)
	mux.HandleFunc("GET /api/status", d.handleStatus)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelWarn)}))
	mux.HandleFunc("GET /events/stream", d.handleStream)
	mux.HandleFunc("GET /sources/{name}", d.handleSource)
	mux.HandleFunc("GET /objects", d.handleObjects)
	mux.HandleFunc("GET /object", d.handleObject)
	mux.HandleFunc("GET /pods", d.handlePods)
	mux.HandleFunc("GET /nodes", d.handleNodes)
	mux.HandleFunc("GET /events", d.handleEvents)
	mux.Handle("GET /static/", static)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.renderError(w, r, http.StatusNotFound, "no page at "+r.URL.Path)
	})
	return d.secure(mux), nil
}
