package apiserver

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Service account tokens are checked against the datastore: the account
// (and the pod or secret a token is bound to) must still exist with the
// same UID. kube-apiserver caches a token's successful authentication for
// 10 s rather than pay that, and its signature check, on every request;
// so does kiln. This server forgets every entry when it deletes a service
// account, pod or secret, so a revocation through it takes effect at
// once; one made through another server of the cluster takes up to
// tokenCacheTTL here, as in kube.
const (
	tokenCacheTTL = 10 * time.Second
	// tokenCacheSize bounds the cache; when it is full, expired entries
	// go, and if none has expired, all of them.
	tokenCacheSize = 4096
)

type tokenCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]tokenEntry
}

type tokenEntry struct {
	user  User
	until time.Time
}

// get returns the user token authenticated as, if that is known and fresh
// at now.
func (c *tokenCache) get(token string, now time.Time) (User, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.until) {
		return User{}, false
	}
	return e.user, true
}

// add remembers that token authenticates as u until the earlier of
// tokenCacheTTL from now and expires (the token's own expiry).
func (c *tokenCache) add(token string, u User, now, expires time.Time) {
	until := now.Add(tokenCacheTTL)
	if expires.Before(until) {
		until = expires
	}
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[[sha256.Size]byte]tokenEntry{}
	}
	if len(c.entries) >= tokenCacheSize {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= tokenCacheSize {
			clear(c.entries)
		}
	}
	c.entries[key] = tokenEntry{user: u, until: until}
}

// forget drops every entry: something a token may name was deleted.
func (c *tokenCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

// namedByTokens says whether res holds what a service account token may
// name: the account, or the pod or secret it is bound to.
func namedByTokens(res *resource) bool {
	if res.Group != "" {
		return false
	}
	switch res.Name {
	case "serviceaccounts", "pods", "secrets":
		return true
	}
	return false
}
