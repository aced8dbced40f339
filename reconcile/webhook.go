package reconcile

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// WebhookPath is the prefix the webhook handler serves: a source named
// "apps" is triggered by POST /hooks/git/apps.
const WebhookPath = "/hooks/git/"

// MaxWebhookBodyBytes caps a webhook request body; a larger one is
// answered 413 without being read to the end (Argo CVE-2024-40634 was a
// webhook reading any body whole). GitHub caps its own payloads at 25 MB,
// but a push payload that lists a few commits is a few kB.
const MaxWebhookBodyBytes = 1 << 20

// DefaultWebhookRate and DefaultWebhookBurst size the token bucket of each
// source: beyond DefaultWebhookRate triggers a second, after a burst of
// DefaultWebhookBurst, a webhook is answered 429. A trigger during a fetch
// coalesces into one more fetch anyway; the bucket bounds the work a flood
// of authenticated requests can cause (RELIABILITY (b) 21).
const (
	DefaultWebhookRate  = 10
	DefaultWebhookBurst = 10
)

// WebhookSource is one source a webhook can trigger.
type WebhookSource struct {
	// Trigger asks the source for a fetch now; it must not block
	// (sources.Source.Trigger).
	Trigger func()
	// Secret, if set, authenticates requests: the HMAC-SHA256 key of
	// GitHub's X-Hub-Signature-256 and Gitea's X-Gitea-Signature, or the
	// token GitLab sends in X-Gitlab-Token. Without it any request to the
	// source's path triggers a fetch.
	Secret []byte
	// Branch, if set, is the ref the source follows (a branch or tag name,
	// or refs/heads/X, refs/tags/X): a push event for another ref does not
	// trigger a fetch. Empty means any push triggers one.
	Branch string
}

// WebhookConfig configures WebhookHandler.
type WebhookConfig struct {
	// Sources are the sources webhooks may trigger, by name.
	Sources map[string]WebhookSource
	// Logger receives one line per trigger; nil means slog.Default(). It
	// never receives a secret or a body.
	Logger *slog.Logger
}

// webhookHandler serves WebhookPath. Its map and buckets are fixed at
// construction: an unknown source never allocates anything.
type webhookHandler struct {
	log     *slog.Logger
	sources map[string]*webhookEntry
	// now is time.Now; a test seam for the rate limit.
	now func() time.Time
}

type webhookEntry struct {
	WebhookSource
	bucket tokenBucket
}

// WebhookHandler returns the handler of POST /hooks/git/<source>, to be
// mounted at WebhookPath. It asks the named source for an immediate
// fetch and answers 202 with {"source":"<name>","triggered":true}.
//
// It understands GitHub (X-GitHub-Event: push or ping, signed with
// X-Hub-Signature-256), GitLab (X-Gitlab-Event: Push Hook or Tag Push
// Hook, X-Gitlab-Token), Gitea and Forgejo (X-Gitea-Event or
// X-Forgejo-Event: push, X-Gitea-Signature or X-Forgejo-Signature), and a
// plain POST without an event header, which always triggers; when the
// source has a Secret, a plain POST must carry X-Hub-Signature-256 or
// "Authorization: Bearer <secret>". Other events, pings and pushes to a
// ref other than WebhookSource.Branch are answered 200 without a trigger.
//
// Errors: 405 for a method other than POST, 404 for an unknown source,
// 413 for a body over MaxWebhookBodyBytes, 401 for a missing or wrong
// signature or token (compared in constant time), 400 for a push payload
// that is not JSON when the ref must be checked, and 429 when the
// source's rate limit is spent. A webhook only ever triggers a fetch: the
// body is never trusted for content, only for the ref it names.
func WebhookHandler(cfg WebhookConfig) http.Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	h := &webhookHandler{
		log:     log.With("component", "webhook"),
		sources: make(map[string]*webhookEntry, len(cfg.Sources)),
		now:     time.Now,
	}
	for name, s := range cfg.Sources {
		h.sources[name] = &webhookEntry{WebhookSource: s}
	}
	return h
}

// webhookReply is the JSON body of every answer.
type webhookReply struct {
	Source    string `json:"source,omitempty"`
	Triggered bool   `json:"triggered"`
	// Reason says why a request did not trigger a fetch.
	Reason string `json:"reason,omitempty"`
}

// Providers, as logged.
const (
	providerGitHub  = "github"
	providerGitLab  = "gitlab"
	providerGitea   = "gitea"
	providerGeneric = "generic"
)

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, webhookReply{Reason: "method not allowed"})
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, WebhookPath)
	src := h.sources[name]
	if !ok || name == "" || src == nil {
		// The name is not echoed: it is the caller's input.
		reply(w, http.StatusNotFound, webhookReply{Reason: "unknown source"})
		return
	}
	if r.ContentLength > MaxWebhookBodyBytes {
		reply(w, http.StatusRequestEntityTooLarge, webhookReply{Source: name, Reason: "body too large"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			reply(w, http.StatusRequestEntityTooLarge, webhookReply{Source: name, Reason: "body too large"})
			return
		}
		reply(w, http.StatusBadRequest, webhookReply{Source: name, Reason: "read body"})
		return
	}
	log := h.log.With("source", name)

	provider, event := classify(r.Header)
	if len(src.Secret) > 0 && !authentic(provider, r.Header, body, src.Secret) {
		log.Debug("webhook refused: bad or missing signature", "provider", provider)
		reply(w, http.StatusUnauthorized, webhookReply{Source: name, Reason: "bad or missing signature"})
		return
	}
	switch {
	case provider == providerGitHub && event == "ping":
		reply(w, http.StatusOK, webhookReply{Source: name, Reason: "ping"})
		return
	case !isPush(provider, event):
		log.Debug("webhook ignored: not a push", "provider", provider)
		reply(w, http.StatusOK, webhookReply{Source: name, Reason: "not a push event"})
		return
	}
	if src.Branch != "" && provider != providerGeneric {
		ref, err := pushRef(r.Header.Get("Content-Type"), body)
		if err != nil {
			reply(w, http.StatusBadRequest, webhookReply{Source: name, Reason: "push payload without a ref"})
			return
		}
		if !refMatches(src.Branch, ref) {
			log.Debug("webhook ignored: push to another ref", "provider", provider)
			reply(w, http.StatusOK, webhookReply{Source: name, Reason: "push to another ref"})
			return
		}
	}
	if !src.bucket.take(h.now(), DefaultWebhookRate, DefaultWebhookBurst) {
		w.Header().Set("Retry-After", "1")
		reply(w, http.StatusTooManyRequests, webhookReply{Source: name, Reason: "rate limited"})
		return
	}
	src.Trigger()
	log.Info("webhook triggered a fetch", "provider", provider)
	reply(w, http.StatusAccepted, webhookReply{Source: name, Triggered: true})
}

// classify names the provider of a request by its event header, and
// returns the event. Gitea and Forgejo also send X-GitHub-Event (and
// Gogs's), so they are recognised first.
func classify(hd http.Header) (provider, event string) {
	if e := hd.Get("X-Forgejo-Event"); e != "" {
		return providerGitea, e
	}
	if e := hd.Get("X-Gitea-Event"); e != "" {
		return providerGitea, e
	}
	if e := hd.Get("X-Gitlab-Event"); e != "" {
		return providerGitLab, e
	}
	if e := hd.Get("X-GitHub-Event"); e != "" {
		return providerGitHub, e
	}
	return providerGeneric, ""
}

func isPush(provider, event string) bool {
	switch provider {
	case providerGitHub, providerGitea:
		return event == "push"
	case providerGitLab:
		return event == "Push Hook" || event == "Tag Push Hook"
	}
	return true // generic
}

// authentic checks the request's signature or token against secret the
// way its provider signs.
func authentic(provider string, hd http.Header, body, secret []byte) bool {
	switch provider {
	case providerGitHub:
		return signedSHA256(hd.Get("X-Hub-Signature-256"), body, secret)
	case providerGitLab:
		return equalSecret(hd.Get("X-Gitlab-Token"), secret)
	case providerGitea:
		for _, k := range []string{"X-Forgejo-Signature", "X-Gitea-Signature"} {
			if v := hd.Get(k); v != "" {
				return signedHex(v, body, secret)
			}
		}
		// Recent Gitea and Forgejo sign GitHub's way too.
		return signedSHA256(hd.Get("X-Hub-Signature-256"), body, secret)
	default:
		if v := hd.Get("X-Hub-Signature-256"); v != "" {
			return signedSHA256(v, body, secret)
		}
		token, ok := strings.CutPrefix(hd.Get("Authorization"), "Bearer ")
		return ok && equalSecret(token, secret)
	}
}

// signedSHA256 checks a GitHub signature header, "sha256=<hex>".
func signedSHA256(header string, body, secret []byte) bool {
	sig, ok := strings.CutPrefix(header, "sha256=")
	return ok && signedHex(sig, body, secret)
}

// signedHex checks a hex HMAC-SHA256 of body. hmac.Equal takes the same
// time whatever the first differing byte.
func signedHex(sig string, body, secret []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sig))
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// equalSecret compares a token with the secret in constant time; hashing
// both first hides the secret's length too, which
// subtle.ConstantTimeCompare leaks by returning early on a mismatch.
func equalSecret(token string, secret []byte) bool {
	if token == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(token)), sha256.Sum256(secret)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// pushRef reads the "ref" of a push payload: JSON, or a form whose
// "payload" field is JSON (GitHub's and Gitea's form content type).
func pushRef(contentType string, body []byte) (string, error) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "", err
		}
		body = []byte(form.Get("payload"))
	}
	var p struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "", err
	}
	if p.Ref == "" {
		return "", errors.New("no ref")
	}
	return p.Ref, nil
}

// refMatches says whether a pushed ref (refs/heads/main) is the one a
// source follows, given as a name (main) or a full ref.
func refMatches(follow, pushed string) bool {
	return pushed == follow || pushed == "refs/heads/"+follow || pushed == "refs/tags/"+follow
}

func reply(w http.ResponseWriter, code int, body webhookReply) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// tokenBucket is a token bucket: burst tokens, refilled at rate per second.
type tokenBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time // of the last refill; zero before the first take
}

// take spends a token if there is one.
func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.last.IsZero():
		b.tokens, b.last = burst, now
	case now.After(b.last):
		b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
