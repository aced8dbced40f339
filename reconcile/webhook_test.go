package reconcile

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const webhookSecret = "hook-secret-canary-7f3a"

func sign(body string, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

// webhookTarget is a handler over two sources, "signed" (with a secret
// and a branch) and "open" (neither), counting their triggers.
type webhookTarget struct {
	h            *webhookHandler
	signed, open atomic.Int32
	logs         *bytes.Buffer
	clock        time.Time
}

func newWebhookTarget(t *testing.T) *webhookTarget {
	t.Helper()
	wt := &webhookTarget{logs: &bytes.Buffer{}, clock: time.Unix(1_700_000_000, 0)}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(wt.logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug}))
	wt.h = WebhookHandler(WebhookConfig{Logger: log, Sources: map[string]WebhookSource{
		"signed": {Trigger: func() { wt.signed.Add(1) }, Secret: []byte(webhookSecret), Branch: "main"},
		"open":   {Trigger: func() { wt.open.Add(1) }},
	}}).(*webhookHandler)
	// A clock that stands still: the rate limit refills only when a test
	// moves it.
	wt.h.now = func() time.Time { return wt.clock }
	return wt
}

// do serves one request and returns the status and the decoded reply.
func (wt *webhookTarget) do(t *testing.T, method, path string, hdr map[string]string, body string) (int, webhookReply) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	wt.h.ServeHTTP(rec, req)
	var r webhookReply
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Errorf("reply %q: %v", rec.Body.String(), err)
	}
	return rec.Code, r
}

func TestWebhookHandler_ServeHTTP(t *testing.T) {
	const (
		pushMain  = `{"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"}`
		pushOther = `{"ref":"refs/heads/feature","after":"0123456789abcdef0123456789abcdef01234567"}`
		pushTag   = `{"ref":"refs/tags/main"}`
	)
	formMain := url.Values{"payload": {pushMain}}.Encode()
	tests := []struct {
		name    string
		method  string // default POST
		path    string
		hdr     map[string]string
		body    string
		code    int
		trigger bool // of the source in path
		reason  string
	}{
		// GitHub.
		{name: "github push signed", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(pushMain, webhookSecret), "Content-Type": "application/json"},
			code: http.StatusAccepted, trigger: true},
		{name: "github push form-encoded", path: "/hooks/git/signed", body: formMain,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(formMain, webhookSecret), "Content-Type": "application/x-www-form-urlencoded"},
			code: http.StatusAccepted, trigger: true},
		{name: "github bad signature", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(pushMain, "wrong")},
			code: http.StatusUnauthorized, reason: "bad or missing signature"},
		{name: "github signature of another body", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(pushOther, webhookSecret)},
			code: http.StatusUnauthorized},
		{name: "github signature without prefix", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": sign(pushMain, webhookSecret)},
			code: http.StatusUnauthorized},
		{name: "github signature not hex", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=zz"},
			code: http.StatusUnauthorized},
		{name: "github missing signature", path: "/hooks/git/signed", body: pushMain,
			hdr: map[string]string{"X-GitHub-Event": "push"}, code: http.StatusUnauthorized},
		{name: "github ping", path: "/hooks/git/signed", body: `{"zen":"hi"}`,
			hdr:  map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(`{"zen":"hi"}`, webhookSecret)},
			code: http.StatusOK, reason: "ping"},
		{name: "github unsigned ping to a signed source", path: "/hooks/git/signed", body: `{}`,
			hdr: map[string]string{"X-GitHub-Event": "ping"}, code: http.StatusUnauthorized},
		{name: "github push to another branch", path: "/hooks/git/signed", body: pushOther,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(pushOther, webhookSecret)},
			code: http.StatusOK, reason: "push to another ref"},
		{name: "github push of a tag named like the branch", path: "/hooks/git/signed", body: pushTag,
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(pushTag, webhookSecret)},
			code: http.StatusAccepted, trigger: true},
		{name: "github push payload not json", path: "/hooks/git/signed", body: "nope",
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("nope", webhookSecret)},
			code: http.StatusBadRequest},
		{name: "github other event", path: "/hooks/git/signed", body: `{}`,
			hdr:  map[string]string{"X-GitHub-Event": "issues", "X-Hub-Signature-256": "sha256=" + sign(`{}`, webhookSecret)},
			code: http.StatusOK, reason: "not a push event"},
		{name: "github push without secret or branch", path: "/hooks/git/open", body: pushOther,
			hdr: map[string]string{"X-GitHub-Event": "push"}, code: http.StatusAccepted, trigger: true},

		// GitLab.
		{name: "gitlab push token", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": webhookSecret},
			code: http.StatusAccepted, trigger: true},
		{name: "gitlab tag push", path: "/hooks/git/signed", body: pushTag,
			hdr:  map[string]string{"X-Gitlab-Event": "Tag Push Hook", "X-Gitlab-Token": webhookSecret},
			code: http.StatusAccepted, trigger: true},
		{name: "gitlab wrong token", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": webhookSecret + "x"},
			code: http.StatusUnauthorized},
		{name: "gitlab token prefix", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": webhookSecret[:5]},
			code: http.StatusUnauthorized},
		{name: "gitlab missing token", path: "/hooks/git/signed", body: pushMain,
			hdr: map[string]string{"X-Gitlab-Event": "Push Hook"}, code: http.StatusUnauthorized},
		{name: "gitlab HMAC is not its scheme", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Hub-Signature-256": "sha256=" + sign(pushMain, webhookSecret)},
			code: http.StatusUnauthorized},
		{name: "gitlab merge request", path: "/hooks/git/signed", body: `{}`,
			hdr:  map[string]string{"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": webhookSecret},
			code: http.StatusOK, reason: "not a push event"},
		{name: "gitlab push to another branch", path: "/hooks/git/signed", body: pushOther,
			hdr:  map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": webhookSecret},
			code: http.StatusOK, reason: "push to another ref"},

		// Gitea and Forgejo, which also send GitHub's and Gogs's headers.
		{name: "gitea push signed", path: "/hooks/git/signed", body: pushMain,
			hdr: map[string]string{"X-Gitea-Event": "push", "X-Gogs-Event": "push", "X-GitHub-Event": "push",
				"X-Gitea-Signature": sign(pushMain, webhookSecret)},
			code: http.StatusAccepted, trigger: true},
		{name: "forgejo push signed", path: "/hooks/git/signed", body: pushMain,
			hdr: map[string]string{"X-Forgejo-Event": "push", "X-Gitea-Event": "push",
				"X-Forgejo-Signature": sign(pushMain, webhookSecret), "X-Gitea-Signature": sign(pushMain, webhookSecret)},
			code: http.StatusAccepted, trigger: true},
		{name: "gitea signed GitHub's way", path: "/hooks/git/signed", body: pushMain,
			hdr:  map[string]string{"X-Gitea-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(pushMain, webhookSecret)},
			code: http.StatusAccepted, trigger: true},
		{name: "gitea bad signature", path: "/hooks/git/signed", body: pushMain,
			hdr: map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(pushMain, "wrong"),
				"X-Hub-Signature-256": "sha256=" + sign(pushMain, webhookSecret)},
			code: http.StatusUnauthorized},
		{name: "gitea missing signature", path: "/hooks/git/signed", body: pushMain,
			hdr: map[string]string{"X-Gitea-Event": "push"}, code: http.StatusUnauthorized},
		{name: "gitea other event", path: "/hooks/git/signed", body: `{}`,
			hdr:  map[string]string{"X-Gitea-Event": "create", "X-Gitea-Signature": sign(`{}`, webhookSecret)},
			code: http.StatusOK, reason: "not a push event"},

		// Generic.
		{name: "generic post", path: "/hooks/git/open", code: http.StatusAccepted, trigger: true},
		{name: "generic post with any body", path: "/hooks/git/open", body: "not json", code: http.StatusAccepted, trigger: true},
		{name: "generic signed", path: "/hooks/git/signed", body: "x",
			hdr:  map[string]string{"X-Hub-Signature-256": "sha256=" + sign("x", webhookSecret)},
			code: http.StatusAccepted, trigger: true},
		{name: "generic bearer", path: "/hooks/git/signed",
			hdr:  map[string]string{"Authorization": "Bearer " + webhookSecret},
			code: http.StatusAccepted, trigger: true},
		{name: "generic wrong bearer", path: "/hooks/git/signed",
			hdr: map[string]string{"Authorization": "Bearer nope"}, code: http.StatusUnauthorized},
		{name: "generic basic auth is not accepted", path: "/hooks/git/signed",
			hdr: map[string]string{"Authorization": "Basic " + webhookSecret}, code: http.StatusUnauthorized},
		{name: "generic unsigned to a signed source", path: "/hooks/git/signed", code: http.StatusUnauthorized},

		// Routing and limits.
		{name: "GET", method: http.MethodGet, path: "/hooks/git/open", code: http.StatusMethodNotAllowed},
		{name: "PUT", method: http.MethodPut, path: "/hooks/git/open", code: http.StatusMethodNotAllowed},
		{name: "unknown source", path: "/hooks/git/nope", code: http.StatusNotFound, reason: "unknown source"},
		{name: "no source", path: "/hooks/git/", code: http.StatusNotFound},
		{name: "nested path", path: "/hooks/git/open/x", code: http.StatusNotFound},
		{name: "other prefix", path: "/hooks/gitx/open", code: http.StatusNotFound},
		{name: "body at the cap", path: "/hooks/git/open", body: strings.Repeat("a", MaxWebhookBodyBytes),
			code: http.StatusAccepted, trigger: true},
		{name: "body over the cap", path: "/hooks/git/open", body: strings.Repeat("a", MaxWebhookBodyBytes+1),
			code: http.StatusRequestEntityTooLarge, reason: "body too large"},
		{name: "signed body over the cap", path: "/hooks/git/signed", body: strings.Repeat("a", 2*MaxWebhookBodyBytes),
			hdr:  map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(strings.Repeat("a", 2*MaxWebhookBodyBytes), webhookSecret)},
			code: http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wt := newWebhookTarget(t)
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			code, r := wt.do(t, method, tc.path, tc.hdr, tc.body)
			if code != tc.code {
				t.Errorf("status = %d, want %d (reply %+v)", code, tc.code, r)
			}
			if r.Triggered != tc.trigger {
				t.Errorf("reply triggered = %v, want %v", r.Triggered, tc.trigger)
			}
			if tc.reason != "" && r.Reason != tc.reason {
				t.Errorf("reason = %q, want %q", r.Reason, tc.reason)
			}
			var n int32
			if strings.HasSuffix(tc.path, "/signed") {
				n = wt.signed.Load()
			} else {
				n = wt.open.Load()
			}
			if got := wt.signed.Load() + wt.open.Load(); got != n {
				t.Errorf("the other source was triggered")
			}
			if want := map[bool]int32{true: 1}[tc.trigger]; n != want {
				t.Errorf("%d triggers, want %d", n, want)
			}
			if tc.trigger && r.Source != strings.TrimPrefix(tc.path, WebhookPath) {
				t.Errorf("reply source = %q", r.Source)
			}
			if code == http.StatusMethodNotAllowed {
				// Checked below through a recorder that keeps headers.
				return
			}
			if s := wt.logs.String(); strings.Contains(s, webhookSecret) || (len(tc.body) >= 8 && strings.Contains(s, tc.body)) {
				t.Errorf("log holds the secret or the body:\n%s", s)
			}
		})
	}
}

func TestWebhookHandler_ServeHTTP_methodAllow(t *testing.T) {
	wt := newWebhookTarget(t)
	rec := httptest.NewRecorder()
	wt.h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/hooks/git/open", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != http.MethodPost {
		t.Errorf("GET: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

func TestWebhookHandler_ServeHTTP_rateLimit(t *testing.T) {
	wt := newWebhookTarget(t)
	post := func(path string, hdr map[string]string) int {
		t.Helper()
		code, _ := wt.do(t, http.MethodPost, path, hdr, "")
		return code
	}
	for i := range DefaultWebhookBurst {
		if code := post("/hooks/git/open", nil); code != http.StatusAccepted {
			t.Fatalf("request %d: %d, want 202", i+1, code)
		}
	}
	if code := post("/hooks/git/open", nil); code != http.StatusTooManyRequests {
		t.Fatalf("request over the burst: %d, want 429", code)
	}
	if n := wt.open.Load(); n != DefaultWebhookBurst {
		t.Errorf("%d triggers, want %d", n, DefaultWebhookBurst)
	}
	// Each source has its own bucket.
	if code := post("/hooks/git/signed", map[string]string{"Authorization": "Bearer " + webhookSecret}); code != http.StatusAccepted {
		t.Errorf("other source: %d, want 202", code)
	}
	// Refused requests spend no token: a stranger cannot use up a
	// source's budget.
	for range 3 * DefaultWebhookBurst {
		if code := post("/hooks/git/signed", map[string]string{"Authorization": "Bearer wrong"}); code != http.StatusUnauthorized {
			t.Fatalf("bad token: %d, want 401", code)
		}
	}
	if code := post("/hooks/git/signed", map[string]string{"Authorization": "Bearer " + webhookSecret}); code != http.StatusAccepted {
		t.Errorf("after refused requests: %d, want 202", code)
	}
	// A tenth of a second refills one token at 10/s, and no more.
	wt.clock = wt.clock.Add(time.Second / DefaultWebhookRate)
	if code := post("/hooks/git/open", nil); code != http.StatusAccepted {
		t.Errorf("after refill: %d, want 202", code)
	}
	if code := post("/hooks/git/open", nil); code != http.StatusTooManyRequests {
		t.Errorf("second after refill: %d, want 429", code)
	}
	// A long pause refills the burst, not more.
	wt.clock = wt.clock.Add(time.Hour)
	n := 0
	for post("/hooks/git/open", nil) == http.StatusAccepted {
		n++
		if n > 2*DefaultWebhookBurst {
			break
		}
	}
	if n != DefaultWebhookBurst {
		t.Errorf("%d requests after a pause, want %d", n, DefaultWebhookBurst)
	}
}

// A real server: the cap holds for a chunked body of unknown length, and
// the connection is not left reading it.
func TestWebhookHandler_ServeHTTP_chunkedOverCap(t *testing.T) {
	wt := newWebhookTarget(t)
	srv := httptest.NewServer(wt.h)
	t.Cleanup(srv.Close)
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range 2 * MaxWebhookBodyBytes / len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/hooks/git/open", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pr.CloseWithError(io.ErrClosedPipe)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413", resp.StatusCode)
	}
	if n := wt.open.Load(); n != 0 {
		t.Errorf("%d triggers, want 0", n)
	}
}

func FuzzWebhookHandler_ServeHTTP(f *testing.F) {
	f.Add("push", `{"ref":"refs/heads/main"}`, "application/json")
	f.Add("Push Hook", `{"ref":"main"}`, "")
	f.Add("push", "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D", "application/x-www-form-urlencoded")
	f.Add("push", "payload=%zz", "application/x-www-form-urlencoded; charset=utf-8")
	f.Fuzz(func(t *testing.T, event, body, contentType string) {
		var n atomic.Int32
		h := WebhookHandler(WebhookConfig{Logger: slog.New(slog.DiscardHandler), Sources: map[string]WebhookSource{
			"s": {Trigger: func() { n.Add(1) }, Branch: "main"},
		}})
		for _, hdr := range []string{"X-GitHub-Event", "X-Gitlab-Event", "X-Gitea-Event"} {
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/hooks/git/s", strings.NewReader(body))
			req.Header.Set(hdr, event)
			req.Header.Set("Content-Type", contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusTooManyRequests:
			default:
				t.Fatalf("%s: status %d", hdr, rec.Code)
			}
		}
	})
}
