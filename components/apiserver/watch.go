package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/components/apiserver/printers"
	"kiln.dev/kiln/components/store"
)

// bookmarkInterval is how often a watch that allows bookmarks asks etcd for
// progress; kube-apiserver sends one about every minute.
const bookmarkInterval = 30 * time.Second

// initialEventsEnd is the annotation on the bookmark that ends the initial
// events of a sendInitialEvents watch (client-go's watch-list).
const initialEventsEnd = "k8s.io/initial-events-end"

// watchParams are the query parameters of a watch.
type watchParams struct {
	rv                  string
	timeout             time.Duration
	bookmarks           bool
	sendInitialEvents   bool
	table               bool
	includeObjectInRows string
}

func parseWatch(r *http.Request) (watchParams, error) {
	q := r.URL.Query()
	p := watchParams{rv: q.Get("resourceVersion"), bookmarks: q.Get("allowWatchBookmarks") == "true", table: wantsTable(r)}
	p.includeObjectInRows = q.Get("includeObject")
	if p.includeObjectInRows == "" {
		p.includeObjectInRows = "Metadata"
	}
	if t := q.Get("timeoutSeconds"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return p, badRequest("invalid timeoutSeconds %q", t)
		}
		p.timeout = time.Duration(n) * time.Second
	}
	if sie := q.Get("sendInitialEvents"); sie != "" {
		v, err := strconv.ParseBool(sie)
		if err != nil {
			return p, badRequest("invalid sendInitialEvents %q", sie)
		}
		p.sendInitialEvents = v
		if v && q.Get("resourceVersionMatch") != "NotOlderThan" {
			return p, apierrors.NewInvalid(listOptionsKind, "", field.ErrorList{field.Forbidden(field.NewPath("resourceVersionMatch"), "sendInitialEvents requires resourceVersionMatch=NotOlderThan")})
		}
		if v && !p.bookmarks {
			return p, apierrors.NewInvalid(listOptionsKind, "", field.ErrorList{field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires allowWatchBookmarks=true")})
		}
	}
	if p.rv != "" && p.rv != "0" {
		if _, err := strconv.ParseInt(p.rv, 10, 64); err != nil {
			return p, badRequest("invalid resourceVersion %q", p.rv)
		}
	}
	return p, nil
}

// watchEvent is one frame of the stream.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo) {
	f, err := parseFilter(r, res)
	if err != nil {
		writeError(w, err)
		return
	}
	if ri.name != "" {
		// GET .../pods/NAME?watch=true watches one object.
		f.fields = fields.AndSelectors(f.fields, fields.OneTermEqualSelector("metadata.name", ri.name))
	}
	p, err := parseWatch(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx := r.Context()
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	// Decide the start: a known revision resumes; none (or 0, or
	// sendInitialEvents) sends the current state first.
	var initial []store.KV
	var from int64
	if p.sendInitialEvents || p.rv == "" || p.rv == "0" {
		lr, err := s.store.List(ctx, res.listPrefix(ri.namespace), store.ListOptions{})
		if err != nil {
			writeError(w, storeError(err, res.gr, ""))
			return
		}
		for _, kv := range lr.KVs {
			if ok, _ := f.matches(res, kv.Value); ok {
				initial = append(initial, kv)
			}
		}
		from = lr.Revision
	} else {
		from, _ = strconv.ParseInt(p.rv, 10, 64)
		if err := s.store.CheckRevision(ctx, from+1); errors.Is(err, store.ErrCompacted) {
			writeError(w, apierrors.NewResourceExpired("too old resource version: "+p.rv))
			return
		}
	}
	// Attach to the resource's watch cache before sending anything, so no
	// event after from is missed; a revision older than the cache's window
	// gets a direct store watch.
	var cw *cacheWatcher
	var backlog []watchItem
	wc := s.caches.get(s.store, res)
	if wc != nil {
		var ok bool
		if cw, backlog, ok = wc.attach(res.listPrefix(ri.namespace), f, from, p.bookmarks); ok {
			defer wc.detach(cw)
		}
	}
	var events <-chan store.Event
	if cw == nil {
		events = s.store.Watch(ctx, res.listPrefix(ri.namespace), from+1)
	}

	ww := &watchWriter{w: w, s: s, res: res, p: p}
	ct := mimeJSON
	if p.table {
		ct = "application/json;as=Table;v=v1;g=meta.k8s.io"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	for _, kv := range initial {
		if !ww.send("ADDED", kv) {
			return
		}
	}
	if p.sendInitialEvents {
		ww.bookmark(from, true)
	}
	flush()

	var tick <-chan time.Time
	if p.bookmarks {
		t := time.NewTicker(bookmarkInterval)
		defer t.Stop()
		tick = t.C
	}
	if cw != nil {
		ww.serveCached(ctx, wc, cw, backlog, tick, flush)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			_ = s.store.RequestProgress(ctx)
		case ev, ok := <-events:
			if !ok {
				return
			}
			if !ww.handle(ev, f) {
				return
			}
			// Deliver a whole burst before flushing.
			for drained := false; !drained; {
				select {
				case ev, ok := <-events:
					if !ok || !ww.handle(ev, f) {
						flush()
						return
					}
				default:
					drained = true
				}
			}
			flush()
		}
	}
}

// serveCached streams a watch attached to a cache: its backlog, then what
// the cache sends, until the client, the timeout or the cache ends it.
func (ww *watchWriter) serveCached(ctx context.Context, wc *watchCache, cw *cacheWatcher, backlog []watchItem, tick <-chan time.Time, flush func()) {
	for _, it := range backlog {
		if !ww.sendItem(it) {
			return
		}
	}
	flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			wc.requestProgress()
		case it, ok := <-cw.ch:
			if !ok {
				ww.ended(cw.err)
				flush()
				return
			}
			if !ww.sendItem(it) {
				return
			}
			// Deliver a whole burst before flushing.
			for drained := false; !drained; {
				select {
				case it, ok := <-cw.ch:
					if !ok {
						ww.ended(cw.err)
						flush()
						return
					}
					if !ww.sendItem(it) {
						return
					}
				default:
					drained = true
				}
			}
			flush()
		}
	}
}

// sendItem writes one item from a cache; the cache encoded the object
// once for every watch. The cache's JSON is the stored form, which
// watches of another version (the cache is shared by every version of a
// kind, since they share the store prefix) and tables build their own
// from.
func (ww *watchWriter) sendItem(it watchItem) bool {
	if it.ce == nil {
		ww.bookmark(it.progress, false)
		return true
	}
	if ww.p.table || ww.res.conv != nil {
		return ww.send(it.typ, it.kv())
	}
	return ww.write(it.typ, it.json())
}

// ended writes the Error event that ends a stream whose store watch
// failed: 410 when history it needed was compacted.
func (ww *watchWriter) ended(err error) {
	if errors.Is(err, store.ErrCompacted) {
		st := apierrors.NewResourceExpired("too old resource version").ErrStatus
		st.Kind, st.APIVersion = "Status", "v1"
		b, _ := json.Marshal(st)
		ww.write("ERROR", b)
	}
}

type watchWriter struct {
	w       http.ResponseWriter
	s       *Server
	res     *resource
	p       watchParams
	columns bool // table columns were sent
	buf     bytes.Buffer
}

// handle turns one store event into zero or one watch events. An object
// that stops matching the selector is reported DELETED, one that starts
// matching ADDED, as kube's cacher does. It returns false to end the
// stream.
func (ww *watchWriter) handle(ev store.Event, f filter) bool {
	switch ev.Type {
	case store.Error:
		ww.ended(ev.Err)
		return false
	case store.Progress:
		if ww.p.bookmarks {
			ww.bookmark(ev.Revision, false)
		}
		return true
	case store.Deleted:
		if ok, _ := f.matches(ww.res, ev.KV.Value); ok {
			return ww.send("DELETED", ev.KV)
		}
		return true
	}
	cur, _ := f.matches(ww.res, ev.KV.Value)
	prev := false
	if ev.Prev != nil {
		prev, _ = f.matches(ww.res, ev.Prev.Value)
	}
	switch {
	case cur && prev:
		return ww.send("MODIFIED", ev.KV)
	case cur:
		return ww.send("ADDED", ev.KV)
	case prev:
		// kube sends the last matching state at the revision of the change.
		last := *ev.Prev
		last.ModRevision = ev.KV.ModRevision
		return ww.send("DELETED", last)
	}
	return true
}

func (ww *watchWriter) send(typ string, kv store.KV) bool {
	if !ww.p.table {
		data, err := ww.res.servedJSON(kv)
		if err != nil {
			return false
		}
		return ww.write(typ, data)
	}
	obj, err := ww.res.decodeStored(kv)
	if err != nil {
		return false
	}
	t := printers.Table(ww.res.Group, ww.res.Name, []runtime.Object{obj}, ww.p.includeObjectInRows, ww.s.now())
	if ww.columns {
		t.ColumnDefinitions = nil
	}
	ww.columns = true
	t.ResourceVersion = strconv.FormatInt(kv.ModRevision, 10)
	data, err := json.Marshal(t)
	if err != nil {
		return false
	}
	return ww.write(typ, data)
}

func (ww *watchWriter) bookmark(rev int64, initialEnd bool) {
	m := map[string]any{"resourceVersion": strconv.FormatInt(rev, 10)}
	if initialEnd {
		m["annotations"] = map[string]string{initialEventsEnd: "true"}
	}
	b, _ := json.Marshal(map[string]any{"kind": ww.res.Kind, "apiVersion": ww.res.GroupVersion().String(), "metadata": m})
	ww.write("BOOKMARK", b)
}

func (ww *watchWriter) write(typ string, obj []byte) bool {
	ww.buf.Reset()
	ww.buf.WriteString(`{"type":"`)
	ww.buf.WriteString(typ)
	ww.buf.WriteString(`","object":`)
	ww.buf.Write(obj)
	ww.buf.WriteString("}\n")
	_, err := ww.w.Write(ww.buf.Bytes())
	return err == nil
}

// listOptionsKind names the kind in errors about list and watch options.
var listOptionsKind = schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}
