package gitserver_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// Tokens the test authorizer knows.
const (
	writeToken = "token-rw-6f1d"
	readToken  = "token-ro-93aa"
)

// authorize accepts writeToken for everything and readToken for reads,
// as Bearer tokens or Basic passwords.
func authorize(r *http.Request, _ string, write bool) (string, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		_, tok, _ = r.BasicAuth()
	}
	switch {
	case tok == writeToken:
		return "writer", nil
	case tok == readToken && !write:
		return "reader", nil
	case tok == readToken:
		return "", gitserver.ErrForbidden
	}
	return "", gitserver.ErrUnauthenticated
}

// hooks records what the server asks and answers with the funcs set.
type hooks struct {
	mu      sync.Mutex
	checked []gitserver.Update
	options [][]string
	applied []gitserver.Update
	check   func(ctx context.Context, p *gitserver.Push, u gitserver.Update) error
	follow  func(ctx context.Context, p *gitserver.Push, u gitserver.Update) error
}

func (h *hooks) Check(ctx context.Context, p *gitserver.Push, u gitserver.Update) error {
	h.mu.Lock()
	h.checked = append(h.checked, u)
	h.options = append(h.options, p.Options)
	check := h.check
	h.mu.Unlock()
	if check != nil {
		return check(ctx, p, u)
	}
	return nil
}

func (h *hooks) Apply(_ context.Context, _ *gitserver.Push, u gitserver.Update) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied = append(h.applied, u)
	return nil
}

func (h *hooks) Follow(ctx context.Context, p *gitserver.Push, u gitserver.Update) error {
	h.mu.Lock()
	follow := h.follow
	h.mu.Unlock()
	if follow != nil {
		return follow(ctx, p, u)
	}
	return nil
}

// setCheck replaces the check while the server runs.
func (h *hooks) setCheck(fn func(ctx context.Context, p *gitserver.Push, u gitserver.Update) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.check = fn
}

// appliedUpdates and lastOptions read what was recorded.
func (h *hooks) appliedUpdates() []gitserver.Update {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]gitserver.Update(nil), h.applied...)
}

func (h *hooks) lastOptions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.options) == 0 {
		return nil
	}
	return h.options[len(h.options)-1]
}

// server serves one repository "app" over plain http; wrap, if set,
// wraps the handler.
type server struct {
	url string // of the repository
	dir string
}

func startServer(t *testing.T, h gitserver.Hooks, wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app.git")
	if err := gitserver.Init(dir, "main"); err != nil {
		t.Fatal(err)
	}
	srv, err := gitserver.New(gitserver.Config{
		Repositories: map[string]gitserver.Repository{"app": {Dir: dir, Hooks: h}},
		Authorize:    authorize,
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	var handler http.Handler = srv
	if wrap != nil {
		handler = wrap(srv)
	}
	mux.Handle(gitserver.PathPrefix, handler)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return &server{url: hs.URL + "/git/app.git", dir: dir}
}

// gitCLI runs the real git with a clean configuration.
type gitCLI struct {
	bin  string
	home string
}

func newGit(t *testing.T) *gitCLI {
	t.Helper()
	bin, err := exec.LookPath("git")
	testenv.Require(t, "git on PATH", err == nil)
	return &gitCLI{bin: bin, home: t.TempDir()}
}

// run runs git in dir and returns its combined output and error.
func (g *gitCLI) run(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), g.bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+g.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs git and fails the test if it fails.
func (g *gitCLI) must(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := g.run(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// auth is the -c option that sends token.
func auth(token string) []string {
	return []string{"-c", "http.extraHeader=Authorization: Bearer " + token}
}

// clone clones url into a new directory with token.
func (g *gitCLI) clone(t *testing.T, url, token string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "work")
	g.must(t, "", append(auth(token), "clone", "-q", url, dir)...)
	g.must(t, dir, "config", "http.extraHeader", "Authorization: Bearer "+token)
	return dir
}

// commit writes files and commits them, returning the commit.
func (g *gitCLI) commit(t *testing.T, dir, msg string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	g.must(t, dir, "add", "-A")
	g.must(t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return g.must(t, dir, "rev-parse", "HEAD")
}

// remoteRef is the value of ref on the server, as ls-remote shows it.
func (g *gitCLI) remoteRef(t *testing.T, url, ref string) string {
	t.Helper()
	out := g.must(t, "", append(auth(writeToken), "ls-remote", url, ref)...)
	h, _, _ := strings.Cut(out, "\t")
	return h
}
