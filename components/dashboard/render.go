package dashboard

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates/<name>.html pages; each defines "main" and
// may define "controls" (the filters, outside the live-swapped main).
var pageNames = []string{"overview", "source", "objects", "object", "pods", "nodes", "events", "error"}

// page is what every page template gets.
type page struct {
	Title string
	// Nav is the active navigation entry.
	Nav string
	// Version is the cluster version the page was rendered at; the script
	// compares it with the stream's.
	Version uint64
	Synced  bool
	Now     time.Time
	Filter  *filter
	Body    any
}

// filter is a page's filter form and the values it was rendered with.
type filter struct {
	Namespaces []string
	Sources    []string
	Namespace  string
	Source     string
	// Page-specific: objects by health and kind, pods by node, events by
	// type.
	Health string
	Kind   string
	Node   string
	Type   string
	Nodes  []string
	Kinds  []string
	Show   map[string]bool
}

// parseTemplates parses each page with the layout and the shared parts.
func (d *Dashboard) parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"age":         d.age,
		"timestamp":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"shortRev":    shortRevision,
		"firstLine":   firstLine,
		"healthClass": healthClass,
		"cpu":         formatCPU,
		"mem":         formatMemory,
		"pct":         func(r ResourceUse) int64 { return min(r.Percent(), 100) },
		"duration":    func(ms int64) string { return (time.Duration(ms) * time.Millisecond).Round(time.Millisecond).String() },
		"deref":       func(p *int32) int32 { return *p },
		"list":        func(xs ...string) []string { return xs },
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// bufPool holds render buffers: a page is rendered whole before it is
// written, so a template error never sends half a page.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// render writes page name with p, or only its main fragment when the
// request asks for ?fragment=1 (the live-update script does).
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	p.Synced = d.cache.synced.Load()
	p.Now = d.cfg.Now()
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	tmpl := "layout"
	if r.URL.Query().Get("fragment") == "1" {
		tmpl = "main"
	}
	if err := d.pages[name].ExecuteTemplate(buf, tmpl, p); err != nil {
		d.log.Warn("render failed", logKeyPage, name, logKeyErr, err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Kiln-Version", strconv.FormatUint(p.Version, 10))
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// renderError is the error page, with the layout.
func (d *Dashboard) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	d.render(w, r, code, "error", page{Title: http.StatusText(code), Version: d.hub.version.Load(),
		Body: struct {
			Code    int
			Message string
		}{code, msg}})
}

// age is how long ago t was, as kubectl prints it.
func (d *Dashboard) age(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	dt := d.cfg.Now().Sub(t)
	switch {
	case dt < 0:
		return "0s"
	case dt < 2*time.Minute:
		return strconv.Itoa(int(dt.Seconds())) + "s"
	case dt < 2*time.Hour:
		return strconv.Itoa(int(dt.Minutes())) + "m"
	case dt < 48*time.Hour:
		return strconv.Itoa(int(dt.Hours())) + "h"
	}
	return strconv.Itoa(int(dt.Hours()/24)) + "d"
}

// shortRevision shortens "main@sha1:<40 hex>" to "main@<12 hex>"; other
// revisions are shown whole.
func shortRevision(rev string) string {
	ref, hash, ok := strings.Cut(rev, "@sha1:")
	if !ok {
		ref, hash, ok = strings.Cut(rev, "@sha256:")
	}
	if !ok || len(hash) <= 12 {
		return rev
	}
	return ref + "@" + hash[:12]
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

// healthClass is the CSS class of a health state; only these fixed
// strings reach the class attribute.
func healthClass(s string) string {
	switch s {
	case HealthHealthy, "True", resultSucceeded, "Normal":
		return "ok"
	case HealthProgressing, "Unknown":
		return "wait"
	case HealthDegraded, HealthMissing, "False", resultFailed, "Warning":
		return "bad"
	}
	return "unknown"
}

func formatCPU(milli int64) string {
	if milli%1000 == 0 {
		return strconv.FormatInt(milli/1000, 10)
	}
	if milli < 1000 {
		return strconv.FormatInt(milli, 10) + "m"
	}
	return strconv.FormatFloat(float64(milli)/1000, 'f', 2, 64)
}

func formatMemory(b int64) string {
	const (
		ki = 1 << 10
		mi = 1 << 20
		gi = 1 << 30
	)
	switch {
	case b >= gi:
		return strconv.FormatFloat(float64(b)/gi, 'f', 1, 64) + "Gi"
	case b >= mi:
		return strconv.FormatInt(b/mi, 10) + "Mi"
	case b >= ki:
		return strconv.FormatInt(b/ki, 10) + "Ki"
	}
	return strconv.FormatInt(b, 10)
}

// staticHandler serves the embedded script and stylesheet.
func staticHandler() (http.Handler, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(sub)
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Revalidate every time: embedded files have no modification
		// time, and a new binary must not run an old script.
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})), nil
}
