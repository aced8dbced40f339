package git

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"kiln.dev/kiln/sources"
)

// require skips the test when a prerequisite is missing, unless
// KILN_E2E=require (CI), where it fails. It is
// components/internal/testenv.Require, which Go's internal rule keeps
// out of reach of sources/.
func require(t testing.TB, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("KILN_E2E") == "require" {
		t.Fatalf("prerequisite missing: %s (KILN_E2E=require)", what)
	}
	t.Skipf("prerequisite missing: %s (set KILN_E2E=require to fail instead)", what)
}

// wait bounds every wait on a source's results.
const wait = 60 * time.Second

// gitEnv isolates the git CLI from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Ada Lovelace",
		"GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Kiln Test",
		"GIT_COMMITTER_EMAIL=ci@example.com",
		"GIT_TERMINAL_PROMPT=0",
	)
}

func requireGit(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("git")
	require(t, "git on PATH", err == nil)
	return p
}

// repo is a bare remote plus a working clone that commits and pushes to
// it with the git CLI.
type repo struct {
	t    *testing.T
	git  string
	home string
	bare string // the remote, a bare repository
	work string
}

// newRepo creates an empty bare remote whose HEAD is branch and a
// working clone of it on that branch.
func newRepo(t *testing.T, root, branch string) *repo {
	t.Helper()
	r := &repo{t: t, git: requireGit(t), home: t.TempDir()}
	r.bare = filepath.Join(root, "remote.git")
	r.work = filepath.Join(t.TempDir(), "work")
	r.run("", "init", "-q", "--bare", "-b", branch, r.bare)
	r.run("", "init", "-q", "-b", branch, r.work)
	r.run(r.work, "remote", "add", "origin", r.bare)
	return r
}

func (r *repo) run(dir string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command(r.git, args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(r.home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// write writes files (path → content) into the working clone.
func (r *repo) write(files map[string]string) {
	r.t.Helper()
	for p, c := range files {
		full := filepath.Join(r.work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *repo) symlink(target, p string) {
	r.t.Helper()
	full := filepath.Join(r.work, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) remove(p string) {
	r.t.Helper()
	if err := os.RemoveAll(filepath.Join(r.work, filepath.FromSlash(p))); err != nil {
		r.t.Fatal(err)
	}
}

// commit commits everything in the working clone and pushes the current
// branch (forced, so that rewritten history goes too); it returns the
// commit hash.
func (r *repo) commit(msg string) string {
	r.t.Helper()
	r.run(r.work, "add", "-A")
	r.run(r.work, "commit", "-q", "--allow-empty", "-m", msg)
	r.run(r.work, "push", "-q", "--force", "origin", "HEAD")
	return r.run(r.work, "rev-parse", "HEAD")
}

// logBuffer collects log output (for asserting that no secret is logged)
// and copies it to the test's output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	return b.out.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is a Source under Run.
type running struct {
	*Source
	out  <-chan sources.Result
	logs *logBuffer
	stop func()
}

// start runs a Source for cfg until the test ends; Name, WorkDir and
// Logger are filled in, and each setup func sees the Source before Run.
func start(t *testing.T, cfg Config, setup ...func(*Source)) *running {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(t.TempDir(), "work")
	}
	logs := &logBuffer{out: t.Output()}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range setup {
		f(s)
	}
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan sources.Result)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Run did not return within %v of cancel", wait)
			}
		})
	}
	t.Cleanup(stop)
	return &running{Source: s, out: out, logs: logs, stop: stop}
}

// next waits for the next result.
func (r *running) next(t *testing.T) sources.Result {
	t.Helper()
	select {
	case res := <-r.out:
		return res
	case <-time.After(wait):
		t.Fatalf("no result within %v", wait)
		return sources.Result{}
	}
}

// snapshot waits for the next result and requires it to be a snapshot.
func (r *running) snapshot(t *testing.T) *sources.Snapshot {
	t.Helper()
	res := r.next(t)
	if res.Err != nil {
		t.Fatalf("want a snapshot, got error: %v", res.Err)
	}
	return res.Snapshot
}

// failure waits for the next result and requires it to be an error.
func (r *running) failure(t *testing.T) error {
	t.Helper()
	res := r.next(t)
	if res.Err == nil {
		t.Fatalf("want an error, got snapshot %s", res.Snapshot.Revision)
	}
	t.Logf("result error: %v", res.Err)
	return res.Err
}

// snapshotOf skips results until a snapshot of commit hash arrives.
func (r *running) snapshotOf(t *testing.T, hash string) *sources.Snapshot {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case res := <-r.out:
			if res.Snapshot != nil && res.Snapshot.Commit.Hash == hash {
				return res.Snapshot
			}
		case <-deadline:
			t.Fatalf("no snapshot of %s within %v", hash, wait)
		}
	}
}

// quiet requires that no result arrives for a short while.
func (r *running) quiet(t *testing.T) {
	t.Helper()
	select {
	case res := <-r.out:
		t.Fatalf("unexpected result: %+v", res)
	case <-time.After(300 * time.Millisecond):
	}
}

// fileMap is a snapshot's files as path → content.
func fileMap(s *sources.Snapshot) map[string]string {
	m := map[string]string{}
	for _, f := range s.Files {
		m[f.Path] = string(f.Data)
	}
	return m
}

// gitServer is git http-backend behind net/http/cgi on a fixed loopback
// address, so that it can be stopped and started again.
type gitServer struct {
	t       *testing.T
	handler http.Handler
	addr    string
	mu      sync.Mutex
	srv     *httptest.Server
}

type serverOptions struct {
	// token, if set, is required as basic auth "git:<token>".
	token string
	// allowReachableSHA1 lets clients want any reachable commit.
	allowReachableSHA1 bool
}

// newGitServer serves the repositories under root at /<name>.
func newGitServer(t *testing.T, root string, opts serverOptions) *gitServer {
	t.Helper()
	git := requireGit(t)
	out, err := exec.Command(git, "--exec-path").Output()
	require(t, "git --exec-path", err == nil)
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	_, err = os.Stat(backend)
	require(t, "git-http-backend", err == nil)
	env := []string{
		"GIT_PROJECT_ROOT=" + root,
		"GIT_HTTP_EXPORT_ALL=1",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"HOME=" + t.TempDir(),
	}
	if opts.allowReachableSHA1 {
		env = append(env, "GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=uploadpack.allowReachableSHA1InWant", "GIT_CONFIG_VALUE_0=true")
	}
	var h http.Handler = &cgi.Handler{Path: backend, Root: "/", Env: env, InheritEnv: []string{"PATH"}}
	if opts.token != "" {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "git" || p != opts.token {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	g := &gitServer{t: t, handler: h, addr: "127.0.0.1:0"}
	g.start()
	t.Cleanup(g.stop)
	return g
}

func (g *gitServer) start() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	ln, err := net.Listen("tcp", g.addr)
	if err != nil {
		g.t.Fatalf("listen %s: %v", g.addr, err)
	}
	g.addr = ln.Addr().String()
	g.srv = httptest.NewUnstartedServer(g.handler)
	g.srv.Listener.Close()
	g.srv.Listener = ln
	g.srv.Start()
}

func (g *gitServer) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		g.srv.Close()
		g.srv = nil
	}
}

func (g *gitServer) url(name string) string { return "http://" + g.addr + "/" + name }

// mustIs fails unless err wraps every target.
func mustIs(t *testing.T, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Errorf("error %q does not wrap %q", err, target)
		}
	}
}
