package reconcile

import (
	"crypto/sha256"
	"sync"
)

// parseCache keeps each manifest file's parse from one Render of a source
// to the next, by path and content, so that a change to one file of a
// thousand parses one file: parsing is most of Render's time. A parse
// depends on nothing but the file (parseFile), so a hit is exactly what
// parsing again would give. Each Render keeps only the files of its own
// snapshot. It is safe for concurrent use.
type parseCache struct {
	mu    sync.Mutex
	files map[parseKey]*parsedFile
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

// parse parses a manifest file, through the cache if there is one; next
// collects the cache of this Render.
func (r *renderer) parse(path string, data []byte, next map[parseKey]*parsedFile) ([]document, []Problem) {
	if r.opts.cache == nil {
		return parseFile(path, data, parseManifests, r.secrets)
	}
	pf := r.opts.cache.parse(path, data, next)
	r.secrets.merge(pf.secrets)
	return pf.docs, pf.problems
}

// parse returns the parse of a manifest file from c, or parses it, and
// records it in next.
func (c *parseCache) parse(path string, data []byte, next map[parseKey]*parsedFile) *parsedFile {
	key := parseKey{path: path, sum: sha256.Sum256(data)}
	c.mu.Lock()
	pf := c.files[key]
	c.mu.Unlock()
	if pf == nil {
		pf = &parsedFile{secrets: newSecretSet()}
		pf.docs, pf.problems = parseFile(path, data, parseManifests, pf.secrets)
	}
	next[key] = pf
	return pf
}

// replace makes next the cache.
func (c *parseCache) replace(next map[parseKey]*parsedFile) {
	c.mu.Lock()
	c.files = next
	c.mu.Unlock()
}

// merge records every value of o in s.
func (s *secretSet) merge(o *secretSet) {
	for v := range o.values {
		s.values[v] = struct{}{}
	}
}
