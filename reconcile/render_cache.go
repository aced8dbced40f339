package reconcile

import (
	"crypto/sha256"
	"errors"
	"maps"
	"reflect"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// parseCache keeps each manifest file's parse from one Render of a source
// to the next, by path and content, so that a change to one file of a
// thousand parses one file: parsing is most of Render's time. A parse
// depends on nothing but the file (parseFile), so a hit is exactly what
// parsing again would give. Each Render keeps only the files of its own
// snapshot. It is safe for concurrent use.
//
// It also keeps, per document, the objects validate accepted (see
// checkedDoc): decoding a document and strictly decoding its objects into
// their Go types is the rest of Render's time (issue 3).
type parseCache struct {
	mu    sync.Mutex
	files map[parseKey]*parsedFile
	// checked and checkedIn are replaced together, never changed in
	// place: a Render reads the pair it started with without the lock.
	checked   map[docKey]*checkedDoc
	checkedIn *checkContext
}

type parseKey struct {
	path string
	sum  [sha256.Size]byte
}

// parsedFile is parseFile's result and the secret values it recorded;
// Render copies documents before use and only reads the rest.
type parsedFile struct {
	docs     []document
	problems []Problem
	secrets  *secretSet
}

// docKey is one document of a cached file: its position in docs.
type docKey struct {
	file parseKey
	doc  int
}

// checkedDoc is what addDocument and validate made of a document that had
// no problem at all: its objects, namespace defaulted, and the secret
// values it holds. The objects are shared by every Render that hits, and
// with their callers; nothing changes an object after Render (apply and
// the dry runs copy before they set anything).
type checkedDoc struct {
	cands   []checkedCand
	secrets *secretSet
}

type checkedCand struct {
	obj  map[string]any
	json []byte
	item int
	gvk  schema.GroupVersionKind
}

// checkContext is everything besides the document that validate's result
// depends on. A checkedDoc is reused only under the context it was checked
// in; any difference drops them all, which is rare (a CRD or the source's
// namespace changed, the cluster learned a kind) and costs one full
// validation.
type checkContext struct {
	defaultNamespace string
	// scope holds the Scope answers for the kinds of the cached objects.
	scope map[schema.GroupVersionKind]scopeAnswer
	// crds are the kinds the snapshot's CRDs define.
	crds map[schema.GroupKind]crdInfo
}

type scopeAnswer struct{ namespaced, known bool }

// errStaleChecks is render's answer when the checked documents it reused
// were checked under other CRDs than the snapshot's; Render then renders
// again without them. It never leaves Render.
var errStaleChecks = errors.New("checked documents are stale: the snapshot's CRDs changed")

// parse parses a manifest file, through the cache if there is one; next
// collects the cache of this Render.
func (r *renderer) parse(path string, data []byte, next map[parseKey]*parsedFile) (parseKey, []document, []Problem) {
	if r.opts.cache == nil {
		docs, problems := parseFile(path, data, parseManifests, r.secrets)
		return parseKey{}, docs, problems
	}
	key, pf := r.opts.cache.parse(path, data, next)
	r.secrets.merge(pf.secrets)
	return key, pf.docs, pf.problems
}

// parse returns the parse of a manifest file from c, or parses it, and
// records it in next.
func (c *parseCache) parse(path string, data []byte, next map[parseKey]*parsedFile) (parseKey, *parsedFile) {
	key := parseKey{path: path, sum: sha256.Sum256(data)}
	c.mu.Lock()
	pf := c.files[key]
	c.mu.Unlock()
	if pf == nil {
		pf = &parsedFile{secrets: newSecretSet()}
		pf.docs, pf.problems = parseFile(path, data, parseManifests, pf.secrets)
	}
	next[key] = pf
	return key, pf
}

// replace makes next the cache.
func (c *parseCache) replace(next map[parseKey]*parsedFile) {
	c.mu.Lock()
	c.files = next
	c.mu.Unlock()
}

// checkedState returns the checked documents and their context.
func (c *parseCache) checkedState() (map[docKey]*checkedDoc, *checkContext) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checked, c.checkedIn
}

// replaceChecked makes docs, checked under in, the checked documents.
func (c *parseCache) replaceChecked(docs map[docKey]*checkedDoc, in *checkContext) {
	c.mu.Lock()
	c.checked, c.checkedIn = docs, in
	c.mu.Unlock()
}

// checkCache is one Render's use of the checked documents.
type checkCache struct {
	// prev is what the last Render left, when its context still holds for
	// everything known before rendering (namespace and Scope answers);
	// nil otherwise. The CRDs are compared once they are collected.
	prev   map[docKey]*checkedDoc
	prevIn *checkContext
	// next collects this Render's checked documents; pending, the
	// documents validated afresh, until validate has seen their objects.
	next    map[docKey]*checkedDoc
	pending map[*document]*pendingDoc
	// answers records Scope's answers during this Render.
	answers map[schema.GroupVersionKind]scopeAnswer
}

// pendingDoc is a document addDocument turned into candidates without a
// problem; it is cached if validate accepts every one of them.
type pendingDoc struct {
	key     docKey
	cands   []*candidate
	secrets *secretSet
	ok      bool
}

// newCheckCache prepares the checked documents of cache for a Render with
// opts, whose Scope it wraps to record the answers. reuse=false ignores
// what the last Render left (its CRDs turned out to differ).
func newCheckCache(cache *parseCache, opts *RenderOptions, reuse bool) *checkCache {
	cc := &checkCache{next: map[docKey]*checkedDoc{}, pending: map[*document]*pendingDoc{}, answers: map[schema.GroupVersionKind]scopeAnswer{}}
	scope := opts.Scope
	opts.Scope = func(gvk schema.GroupVersionKind) (bool, bool) {
		a, ok := cc.answers[gvk]
		if !ok {
			a.namespaced, a.known = scope(gvk)
			cc.answers[gvk] = a
		}
		return a.namespaced, a.known
	}
	prev, in := cache.checkedState()
	if !reuse || in == nil || in.defaultNamespace != opts.DefaultNamespace {
		return cc
	}
	for gvk, want := range in.scope {
		if namespaced, known := opts.Scope(gvk); (scopeAnswer{namespaced, known}) != want {
			return cc
		}
	}
	cc.prev, cc.prevIn = prev, in
	return cc
}

// hit returns the document the last Render checked under key, or nil.
func (cc *checkCache) hit(key docKey) *checkedDoc {
	if cc == nil || cc.prev == nil {
		return nil
	}
	return cc.prev[key]
}

// validated notes validate's verdict on a candidate added afresh: its
// document is cached only if every one of its candidates is accepted.
func (cc *checkCache) validated(c *candidate, accepted bool) {
	if cc == nil || accepted {
		return
	}
	if p := cc.pending[c.doc]; p != nil {
		p.ok = false
	}
}

// crdsChanged reports whether documents were reused although the CRDs
// they were checked with differ from crds.
func (cc *checkCache) crdsChanged(crds map[schema.GroupKind]crdInfo) bool {
	return cc != nil && cc.prev != nil && !maps.EqualFunc(cc.prevIn.crds, crds, func(a, b crdInfo) bool { return reflect.DeepEqual(a, b) })
}

// done records the pending documents validate accepted and hands the
// checked documents of this Render to cache.
func (cc *checkCache) done(cache *parseCache, defaultNamespace string, crds map[schema.GroupKind]crdInfo) {
	for _, p := range cc.pending {
		if !p.ok {
			continue
		}
		d := &checkedDoc{secrets: p.secrets}
		for _, c := range p.cands {
			d.cands = append(d.cands, checkedCand{obj: c.obj, json: c.json, item: c.item, gvk: c.gvk})
		}
		cc.next[p.key] = d
	}
	in := &checkContext{defaultNamespace: defaultNamespace, crds: crds, scope: map[schema.GroupVersionKind]scopeAnswer{}}
	for _, d := range cc.next {
		for _, c := range d.cands {
			in.scope[c.gvk] = cc.answers[c.gvk]
		}
	}
	cache.replaceChecked(cc.next, in)
}

// merge records every value of o in s.
func (s *secretSet) merge(o *secretSet) {
	for v := range o.values {
		s.values[v] = struct{}{}
	}
}
