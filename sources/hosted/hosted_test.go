package hosted_test

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/git"
	"kiln.dev/kiln/sources/hosted"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// fakeDeployer records the calls and answers with its fields.
type fakeDeployer struct {
	mu       sync.Mutex
	checked  []*sources.Snapshot
	synced   []string
	checkErr error
	healthy  func(ctx context.Context) error
}

func (f *fakeDeployer) CheckPush(_ context.Context, _ string, snap *sources.Snapshot, out func(string)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = append(f.checked, snap)
	out("create ConfigMap default/a (a.yaml)")
	return f.checkErr
}

func (f *fakeDeployer) WaitSynced(_ context.Context, _, revision string, _ time.Time, out func(string)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = append(f.synced, revision)
	out("applied " + revision)
	return nil
}

func (f *fakeDeployer) WaitHealthy(ctx context.Context, _, _ string, _ time.Time, out func(string)) error {
	out("ConfigMap default/a: healthy")
	f.mu.Lock()
	healthy := f.healthy
	f.mu.Unlock()
	if healthy != nil {
		return healthy(ctx)
	}
	return nil
}

func (f *fakeDeployer) syncedRevisions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.synced...)
}

const testToken = "hosted-test-token"

// testEnv is a hosted source "app" served over plain http with d as the
// deployer, and its Run's results.
type testEnv struct {
	src     *hosted.Source
	url     string
	results chan sources.Result
	gitBin  string
	home    string
}

func start(t *testing.T, d hosted.Deployer, wait time.Duration) *testEnv {
	t.Helper()
	bin, err := exec.LookPath("git")
	testenv.Require(t, "git on PATH", err == nil)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	src, err := hosted.New(hosted.Config{Name: "app", Dir: filepath.Join(t.TempDir(), "repos", "app.git"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	authorize := func(r *http.Request, _ string, _ bool) (string, error) {
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			return "", gitserver.ErrUnauthenticated
		}
		return "ada", nil
	}
	h, err := hosted.NewHandler(hosted.HandlerConfig{Sources: []*hosted.Source{src}, Deployer: d, Authorize: authorize, PushWait: wait, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gitserver.PathPrefix, h)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	e := &testEnv{src: src, url: hs.URL + "/git/app.git", results: make(chan sources.Result), gitBin: bin, home: t.TempDir()}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, e.results) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

func (e *testEnv) git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), e.gitBin, append([]string{"-c", "http.extraHeader=Authorization: Bearer " + testToken}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+e.home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *testEnv) must(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := e.git(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// work is a new local repository with origin set to the hosted one.
func (e *testEnv) work(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	e.must(t, dir, "init", "-q", "-b", "main")
	e.must(t, dir, "remote", "add", "origin", e.url)
	return dir
}

func (e *testEnv) commit(t *testing.T, dir string, files map[string]string) string {
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
	e.must(t, dir, "add", "-A")
	e.must(t, dir, "commit", "-q", "--allow-empty", "-m", "change")
	return e.must(t, dir, "rev-parse", "HEAD")
}

// next is the next Result Run sends.
func (e *testEnv) next(t *testing.T) sources.Result {
	t.Helper()
	select {
	case r := <-e.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no Result within 10s")
		return sources.Result{}
	}
}

// A push to the deployed branch is checked with the pushed commit's
// files, and its snapshot reaches Run's consumer; the deployer's lines
// and the summary reach the pusher.
func TestHandler_pushDeploys(t *testing.T) {
	d := &fakeDeployer{}
	e := start(t, d, 0)
	work := e.work(t)
	c := e.commit(t, work, map[string]string{"a.yaml": "kind: ConfigMap\n", "sub/b.yaml": "b\n", ".github/x": "ignored\n"})
	out, err := e.git(t, work, "push", "origin", "main")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	for _, want := range []string{"remote: kiln: checking main@" + c[:7] + " (2 files)", "remote: kiln: create ConfigMap default/a (a.yaml)",
		"remote: kiln: applied main@sha1:" + c, "remote: kiln: ConfigMap default/a: healthy", "remote: kiln: deployed main@" + c[:7]} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	r := e.next(t)
	if r.Err != nil || r.Snapshot == nil {
		t.Fatalf("Result = %+v, want a snapshot", r)
	}
	snap := r.Snapshot
	if snap.Revision != "main@sha1:"+c || snap.Source != "app" || snap.Commit == nil || snap.Commit.Hash != c {
		t.Errorf("snapshot %s of %s, commit %+v; want main@sha1:%s of app", snap.Revision, snap.Source, snap.Commit, c)
	}
	var paths []string
	for _, f := range snap.Files {
		paths = append(paths, f.Path)
	}
	if strings.Join(paths, ",") != "a.yaml,sub/b.yaml" {
		t.Errorf("snapshot files %v, want [a.yaml sub/b.yaml]", paths)
	}
	if got := d.syncedRevisions(); len(got) != 1 || got[0] != "main@sha1:"+c {
		t.Errorf("WaitSynced for %v, want [main@sha1:%s]", got, c)
	}
}

// A refused check, an unknown kiln option, a deletion of the deployed
// branch: refused, the branch stays. Other branches are stored without
// a deploy. A failed rollout fails the push.
func TestHandler_rules(t *testing.T) {
	d := &fakeDeployer{}
	e := start(t, d, 0)
	work := e.work(t)
	first := e.commit(t, work, map[string]string{"a.yaml": "a\n"})
	e.must(t, work, "push", "-q", "origin", "main")
	e.next(t)

	d.mu.Lock()
	d.checkErr = errors.New("render: 1 problem:\na.yaml:1 (document 1): ConfigMap default/a: data: unknown field")
	d.mu.Unlock()
	e.commit(t, work, map[string]string{"a.yaml": "b\n"})
	out, err := e.git(t, work, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "remote: kiln: error: a.yaml:1 (document 1): ConfigMap default/a: data: unknown field") ||
		!strings.Contains(out, "(kiln refused the commit)") {
		t.Errorf("refused check: %v\n%s", err, out)
	}
	d.mu.Lock()
	d.checkErr = nil
	d.mu.Unlock()

	out, err = e.git(t, work, "push", "-o", "kiln.fast", "origin", "main")
	if err == nil || !strings.Contains(out, `unknown push option "kiln.fast"`) {
		t.Errorf("unknown option: %v\n%s", err, out)
	}
	out, err = e.git(t, work, "push", "origin", ":main")
	if err == nil || !strings.Contains(out, "(the deployed branch cannot be deleted)") {
		t.Errorf("delete main: %v\n%s", err, out)
	}
	if got := e.must(t, work, "ls-remote", "origin", "refs/heads/main"); !strings.HasPrefix(got, first) {
		t.Errorf("main = %q, want %s", got, first)
	}

	out, err = e.git(t, work, "push", "origin", "HEAD:refs/heads/feature")
	if err != nil || !strings.Contains(out, "remote: kiln: feature stored; source app deploys main") {
		t.Errorf("push to another branch: %v\n%s", err, out)
	}
	if got := d.syncedRevisions(); len(got) != 1 {
		t.Errorf("a push to another branch deployed: %v", got)
	}

	d.mu.Lock()
	d.healthy = func(ctx context.Context) error {
		return errors.New("Deployment default/web: progress deadline exceeded")
	}
	d.mu.Unlock()
	out, err = e.git(t, work, "push", "origin", "main")
	if err == nil || !strings.Contains(out, "remote: kiln: deploy of main@") || !strings.Contains(out, "progress deadline exceeded") ||
		!strings.Contains(out, "(the branch moved, but the deploy is not healthy)") {
		t.Errorf("failed rollout: %v\n%s", err, out)
	}
}

// Run sends nothing for an empty repository, the branch's snapshot at
// start when it exists, and a tree that breaks a rule as an error naming
// the file, once.
func TestSource_Run(t *testing.T) {
	e := start(t, nil, 0)
	select {
	case r := <-e.results:
		t.Fatalf("Run sent %+v for an empty repository", r)
	case <-time.After(200 * time.Millisecond):
	}
	work := e.work(t)
	e.commit(t, work, map[string]string{"a.yaml": "a\n"})
	if err := os.Symlink("/etc/passwd", filepath.Join(work, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	e.must(t, work, "add", "-A")
	e.must(t, work, "commit", "-q", "-m", "escape")
	// Without a deployer the push is only stored: Run reads it on the
	// trigger.
	out, err := e.git(t, work, "push", "origin", "main")
	if err == nil {
		t.Fatalf("push of a symlink out of the repository succeeded:\n%s", out)
	}
	if !strings.Contains(out, "remote: kiln: error: link.yaml:") {
		t.Errorf("push output does not name the link:\n%s", out)
	}
	e.must(t, work, "reset", "-q", "--hard", "HEAD~1")
	c := e.must(t, work, "rev-parse", "HEAD")
	e.must(t, work, "push", "-q", "origin", "main")
	r := e.next(t)
	if r.Err != nil || r.Snapshot.Revision != "main@sha1:"+c {
		t.Fatalf("Result %+v, want main@sha1:%s", r, c)
	}
	e.src.Trigger()
	select {
	case r := <-e.results:
		t.Fatalf("Run sent %+v again for an unchanged branch", r)
	case <-time.After(200 * time.Millisecond):
	}
}

// A snapshot of a commit whose tree breaks a rule is a *git.FileError.
func TestSource_Snapshot_fileError(t *testing.T) {
	e := start(t, nil, 0)
	work := e.work(t)
	e.commit(t, work, map[string]string{"a.yaml": "a\n"})
	if err := os.Symlink("../../x", filepath.Join(work, "out.yaml")); err != nil {
		t.Fatal(err)
	}
	e.must(t, work, "add", "-A")
	e.must(t, work, "commit", "-q", "-m", "escape")
	c := e.must(t, work, "rev-parse", "HEAD")
	// Store it on another branch, which is not checked.
	e.must(t, work, "push", "-q", "origin", "HEAD:refs/heads/other")
	st := gitserver.Open(e.src.Dir())
	defer st.Close()
	_, err := e.src.Snapshot(st, plumbing.NewHash(c))
	var fe *git.FileError
	if !errors.As(err, &fe) || fe.Path != "out.yaml" {
		t.Errorf("Snapshot error %v, want a *git.FileError for out.yaml", err)
	}
}

// TokenAuthorizer checks tokens and access with the API: the admin may
// push, a user who is not allowed may not, an unknown token is not
// authenticated.
func TestTokenAuthorizer(t *testing.T) {
	env := testenv.Start(t, testenv.Options{ExtraTokens: map[string]apiserver.User{"viewer-token": {Name: "viewer"}}})
	auth := hosted.TokenAuthorizer(env.Clientset)
	tests := []struct {
		name    string
		header  string
		write   bool
		user    string
		wantErr error
	}{
		{"admin push", "Bearer " + env.Token, true, "admin", nil},
		{"admin token as basic password", "Basic " + basic("git", env.Token), true, "admin", nil},
		{"viewer push", "Bearer viewer-token", true, "viewer", gitserver.ErrForbidden},
		{"viewer fetch", "Bearer viewer-token", false, "viewer", gitserver.ErrForbidden},
		{"unknown token", "Bearer nope", false, "", gitserver.ErrUnauthenticated},
		{"no token", "", false, "", gitserver.ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/git/app.git/info/refs", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			user, err := auth(r, "app", tc.write)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if user != tc.user {
				t.Errorf("user = %q, want %q", user, tc.user)
			}
		})
	}
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// SnapshotAt reads an earlier revision of the branch again, as Run sent
// it; anything else is an error naming it.
func TestSource_SnapshotAt(t *testing.T) {
	e := start(t, nil, 0)
	work := e.work(t)
	first := e.commit(t, work, map[string]string{"a.yaml": "a: 1\n"})
	e.must(t, work, "push", "-q", "origin", "main")
	r1 := e.next(t)
	e.commit(t, work, map[string]string{"a.yaml": "a: 2\n"})
	e.must(t, work, "push", "-q", "origin", "main")
	e.src.Trigger()
	if r := e.next(t); r.Err != nil || r.Snapshot.Revision == r1.Snapshot.Revision {
		t.Fatalf("second Result %+v", r)
	}
	snap, err := e.src.SnapshotAt("main@sha1:" + first)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != r1.Snapshot.Revision || len(snap.Files) != 1 || string(snap.Files[0].Data) != "a: 1\n" {
		t.Errorf("SnapshotAt(%s) = %+v, want the first push's snapshot", first, snap)
	}
	for _, rev := range []string{"other@sha1:" + first, "main@sha1:nothex", "main@sha1:" + strings.Repeat("0", 40)} {
		if _, err := e.src.SnapshotAt(rev); err == nil {
			t.Errorf("SnapshotAt(%q) succeeded", rev)
		}
	}
}
