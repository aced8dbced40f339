package apiserver

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestDurationBuckets span a cached GET (sub-millisecond) to a large
// unpaged LIST (seconds), as kube-apiserver's buckets do.
var requestDurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// labelOther is the resource label of a path that names no served
// resource: labels come only from the catalog, so a client cannot grow
// the series by inventing paths.
const labelOther = "other"

// requestMetrics observes kiln_apiserver_request_duration_seconds. It
// sits in front of every request, so it allocates nothing per request
// on the common path: label values come from the catalog, observers are
// cached per (verb, resource, code), and the status recorder is pooled.
type requestMetrics struct {
	hist *prometheus.HistogramVec
	// resources maps a path's group, version, resource and subresource
	// to its label ("pods", "pods/log"), built once from the catalog.
	resources map[metricResource]string

	mu        sync.RWMutex
	observers map[metricKey]prometheus.Observer

	recorders sync.Pool
}

type metricResource struct{ group, version, resource, subresource string }

type metricKey struct {
	verb, resource string
	code           int
}

// instrument wraps h with the request-duration histogram registered on
// s.cfg.Metrics; with no registerer it returns h unchanged.
func (s *Server) instrument(h http.Handler) http.Handler {
	if s.cfg.Metrics == nil {
		return h
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kiln_apiserver_request_duration_seconds",
		Help:    "Time to serve an API request, by verb, resource (with subresource) and HTTP code. Watches and followed logs are not observed: they last as long as the client wants.",
		Buckets: requestDurationBuckets,
	}, []string{"verb", "resource", "code"})
	if err := s.cfg.Metrics.Register(hist); err != nil {
		// A second server in one process (tests, a restart in place)
		// shares the first one's histogram.
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			s.log.Warn("request metrics off", "err", err)
			return h
		}
		existing, ok := are.ExistingCollector.(*prometheus.HistogramVec)
		if !ok {
			s.log.Warn("request metrics off", "err", err)
			return h
		}
		hist = existing
	}
	m := &requestMetrics{hist: hist, resources: map[metricResource]string{}, observers: map[metricKey]prometheus.Observer{}}
	for _, r := range s.catalog.All() {
		m.resources[metricResource{r.Group, r.Version, r.Name, ""}] = r.Name
		for _, sub := range r.Subresources {
			m.resources[metricResource{r.Group, r.Version, r.Name, sub.Name}] = r.Name + "/" + sub.Name
		}
	}
	m.recorders.New = func() any { return &statusRecorder{} }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, h) })
}

func (m *requestMetrics) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	verb, resource, long := m.labels(r)
	if long {
		// Not wrapped either: the watch and log paths type-assert
		// http.Flusher and stream for minutes.
		next.ServeHTTP(w, r)
		return
	}
	rec := m.recorders.Get().(*statusRecorder)
	rec.ResponseWriter, rec.code = w, 0
	start := time.Now()
	next.ServeHTTP(rec, r)
	elapsed := time.Since(start)
	code := rec.code
	if code == 0 {
		code = http.StatusOK
	}
	rec.ResponseWriter = nil
	m.recorders.Put(rec)
	m.observer(metricKey{verb, resource, code}).Observe(elapsed.Seconds())
}

// observer returns the cached observer of k, creating it once.
func (m *requestMetrics) observer(k metricKey) prometheus.Observer {
	m.mu.RLock()
	o := m.observers[k]
	m.mu.RUnlock()
	if o != nil {
		return o
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o = m.observers[k]; o == nil {
		o = m.hist.WithLabelValues(k.verb, k.resource, strconv.Itoa(k.code))
		m.observers[k] = o
	}
	return o
}

// labels parses the request as kube-apiserver's RequestInfo does, without
// allocating: every returned string is a constant or a catalog string.
// long reports a watch, a followed log or a connection upgrade.
func (m *requestMetrics) labels(r *http.Request) (verb, resource string, long bool) {
	if r.Header.Get("Upgrade") != "" {
		return "", "", true
	}
	q := r.URL.RawQuery
	watch := strings.Contains(q, "watch=true") || strings.Contains(q, "watch=1")
	p := strings.TrimPrefix(r.URL.Path, "/")
	seg, p := cutSlash(p)
	var mr metricResource
	switch seg {
	case "api":
		mr.version, p = cutSlash(p)
	case "apis":
		mr.group, p = cutSlash(p)
		mr.version, p = cutSlash(p)
	default:
		return methodVerb(r.Method), "", false
	}
	if strings.HasPrefix(p, "watch/") {
		watch = true
		p = p[len("watch/"):]
	}
	var name string
	mr.resource, p = cutSlash(p)
	if mr.resource == "namespaces" && p != "" {
		ns, rest := cutSlash(p)
		if sub, _ := cutSlash(rest); rest == "" || sub == "status" || sub == "finalize" {
			// The namespace itself, or its subresource.
			name, mr.subresource = ns, sub
		} else {
			mr.resource, p = cutSlash(rest)
			name, p = cutSlash(p)
			mr.subresource, _ = cutSlash(p)
		}
	} else {
		name, p = cutSlash(p)
		mr.subresource, _ = cutSlash(p)
	}
	if mr.resource == "" {
		return methodVerb(r.Method), "", false
	}
	resource = m.resources[mr]
	if resource == "" {
		resource = labelOther
	}
	if mr.subresource == "log" && strings.Contains(q, "follow=true") {
		return "", "", true
	}
	verb = methodVerb(r.Method)
	if watch && verb != "create" {
		return "watch", resource, true
	}
	if verb == "get" && name == "" {
		verb = "list"
	}
	if verb == "delete" && name == "" {
		verb = "deletecollection"
	}
	return verb, resource, false
}

func cutSlash(p string) (first, rest string) {
	first, rest, _ = strings.Cut(p, "/")
	return first, rest
}

// methodVerb is the verb of a method on one object; the caller turns get
// and delete of a collection into list and deletecollection.
func methodVerb(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead:
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return "other"
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps http.Flusher working for handlers that stream.
func (w *statusRecorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
