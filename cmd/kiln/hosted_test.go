package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// A repository served before it was shared publishes its history to the
// datastore's record when sharing starts (an upgrade, or a first server
// that grows a second); a new server's empty copy then follows the record
// and serves the same commit and files.
func TestSharedRepos_seedThenReplicate(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	kilnRequire(t, "git on PATH", err == nil)
	env := testenv.Start(t, testenv.Options{})
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	allow := func(*http.Request, string, bool) (string, error) { return "tester", nil }
	serve := func(dir string, shared gitserver.Shared) (*gitserver.Server, string) {
		t.Helper()
		if err := gitserver.Init(dir, "main"); err != nil {
			t.Fatal(err)
		}
		srv, err := gitserver.New(gitserver.Config{Repositories: map[string]gitserver.Repository{"app": {Dir: dir, Shared: shared}},
			Authorize: allow, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv)
		t.Cleanup(hs.Close)
		return srv, hs.URL + "/git/app.git"
	}
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}

	// A plain repository with two pushes (two packs, the second thin).
	dirA := filepath.Join(t.TempDir(), "a.git")
	_, urlPlain := serve(dirA, nil)
	work := filepath.Join(t.TempDir(), "work")
	git("", "init", "-q", "-b", "main", work)
	for _, content := range []string{"one", "two"} {
		if err := os.WriteFile(filepath.Join(work, "cm.yaml"), []byte("data: "+content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		git(work, "add", "-A")
		git(work, "commit", "-q", "-m", content)
		git(work, "push", "-q", urlPlain, "HEAD:main")
	}
	tip := git(work, "rev-parse", "HEAD")

	// Sharing starts: A publishes what it holds.
	shared := sharedRepos{env.Store}
	a, err := gitserver.New(gitserver.Config{Repositories: map[string]gitserver.Repository{"app": {Dir: dirA, Shared: shared}},
		Authorize: allow, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	go a.Replicate(ctx, nil)
	kilnEventually(t, "A's history in the record", func() bool {
		st, err := shared.State(ctx, "app")
		return err == nil && st.Refs["refs/heads/main"] == tip
	})

	// B starts empty and follows.
	dirB := filepath.Join(t.TempDir(), "b.git")
	b, urlB := serve(dirB, shared)
	moved := make(chan string, 4)
	go b.Replicate(ctx, func(_ string, ref plumbing.ReferenceName) { moved <- ref.String() })
	select {
	case ref := <-moved:
		if ref != "refs/heads/main" {
			t.Fatalf("replication moved %s", ref)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("B did not follow the record within 30s")
	}
	clone := filepath.Join(t.TempDir(), "clone")
	git("", "clone", "-q", urlB, clone)
	if got := git(clone, "rev-parse", "HEAD"); got != tip {
		t.Errorf("B serves %s, want %s", got, tip)
	}
	if b, err := os.ReadFile(filepath.Join(clone, "cm.yaml")); err != nil || string(b) != "data: two\n" {
		t.Errorf("B's checkout: %q, %v", b, err)
	}
}
