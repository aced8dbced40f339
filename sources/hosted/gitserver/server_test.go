package gitserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"kiln.dev/kiln/sources/hosted/gitserver"
)

// The real git CLI clones an empty repository, pushes, clones again,
// fetches incrementally (negotiating haves), pushes tags and branches and
// deletes a branch.
func TestServer_gitCLI_roundTrip(t *testing.T) {
	g := newGit(t)
	h := &hooks{}
	s := startServer(t, h, nil)

	a := g.clone(t, s.url, writeToken)
	first := g.commit(t, a, "first", map[string]string{"app.yaml": "kind: ConfigMap\n", "dir/b.txt": "b\n"})
	g.must(t, a, "push", "-q", "origin", "HEAD:main")
	if got := g.remoteRef(t, s.url, "refs/heads/main"); got != first {
		t.Fatalf("main = %q after push, want %s", got, first)
	}

	b := g.clone(t, s.url, readToken)
	if data, err := os.ReadFile(filepath.Join(b, "dir", "b.txt")); err != nil || string(data) != "b\n" {
		t.Fatalf("clone: dir/b.txt = %q, %v", data, err)
	}
	if head := g.must(t, b, "rev-parse", "--abbrev-ref", "HEAD"); head != "main" {
		t.Errorf("clone checked out %q, want main (HEAD's symref)", head)
	}

	// Several commits, so that the fetch below has history to negotiate.
	var last string
	for i := range 5 {
		last = g.commit(t, a, fmt.Sprintf("change %d", i), map[string]string{"app.yaml": fmt.Sprintf("kind: ConfigMap # %d\n", i)})
	}
	g.must(t, a, "tag", "-a", "v1", "-m", "release 1")
	g.must(t, a, "push", "-q", "origin", "HEAD:main", "v1")
	g.must(t, b, "pull", "-q", "--ff-only")
	if got := g.must(t, b, "rev-parse", "HEAD"); got != last {
		t.Errorf("after pull: HEAD %s, want %s", got, last)
	}
	if got := g.must(t, b, "rev-parse", "v1^{commit}"); got != last {
		t.Errorf("tag v1 peels to %s, want %s", got, last)
	}
	ls := g.must(t, "", append(auth(readToken), "ls-remote", s.url)...)
	if !strings.Contains(ls, last+"\trefs/tags/v1^{}") {
		t.Errorf("ls-remote does not show v1 peeled:\n%s", ls)
	}

	g.must(t, a, "push", "-q", "origin", "HEAD:refs/heads/feature")
	g.must(t, a, "push", "-q", "origin", ":feature")
	if got := g.remoteRef(t, s.url, "refs/heads/feature"); got != "" {
		t.Errorf("feature = %q after delete, want none", got)
	}
	if applied := h.appliedUpdates(); len(applied) != 5 {
		t.Errorf("applied %d updates, want 5 (main, main, v1, feature, its delete): %v", len(applied), applied)
	}

	// The repository on disk is an ordinary one: git itself can read it.
	if out := g.must(t, s.dir, "fsck", "--no-progress"); strings.Contains(out, "error") {
		t.Errorf("git fsck: %s", out)
	}
}

// A Check error refuses the update: the push fails, the reason and the
// progress lines reach the pusher, and the branch does not move.
func TestServer_push_refusedByCheck(t *testing.T) {
	g := newGit(t)
	h := &hooks{}
	s := startServer(t, h, nil)
	a := g.clone(t, s.url, writeToken)
	first := g.commit(t, a, "first", map[string]string{"a.yaml": "a\n"})
	g.must(t, a, "push", "-q", "origin", "HEAD:main")

	h.setCheck(func(_ context.Context, p *gitserver.Push, u gitserver.Update) error {
		p.Progress.Line("error: a.yaml:1: Deployment web: spec.replicas: must be an integer")
		return errors.New("invalid manifests")
	})
	g.commit(t, a, "second", map[string]string{"a.yaml": "b\n"})
	out, err := g.run(t, a, "push", "-o", "kiln.no-wait", "origin", "HEAD:main")
	if err == nil {
		t.Fatalf("push succeeded, want it refused:\n%s", out)
	}
	for _, want := range []string{"remote: error: a.yaml:1: Deployment web: spec.replicas: must be an integer", "[remote rejected] HEAD -> main (invalid manifests)"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if got := g.remoteRef(t, s.url, "refs/heads/main"); got != first {
		t.Errorf("main moved to %s, want %s", got, first)
	}
	if got := h.lastOptions(); len(got) != 1 || got[0] != "kiln.no-wait" {
		t.Errorf("push options %q, want [kiln.no-wait]", got)
	}
}

// ErrKeep reports ok without moving the ref.
func TestServer_push_keep(t *testing.T) {
	g := newGit(t)
	h := &hooks{check: func(context.Context, *gitserver.Push, gitserver.Update) error { return gitserver.ErrKeep }}
	s := startServer(t, h, nil)
	a := g.clone(t, s.url, writeToken)
	g.commit(t, a, "first", map[string]string{"a.yaml": "a\n"})
	g.must(t, a, "push", "-q", "origin", "HEAD:main")
	if got := g.remoteRef(t, s.url, "refs/heads/main"); got != "" {
		t.Errorf("main = %s, want it not created", got)
	}
	if applied := h.appliedUpdates(); len(applied) != 0 {
		t.Errorf("Apply called for a kept update: %v", applied)
	}
}

// Follow's error fails the push although the ref moved; Follow's lines
// reach the pusher while it waits.
func TestServer_push_followFails(t *testing.T) {
	g := newGit(t)
	h := &hooks{follow: func(_ context.Context, p *gitserver.Push, _ gitserver.Update) error {
		p.Progress.Line("kiln: Deployment web: 0 of 3 replicas available")
		return errors.New("deploy failed")
	}}
	s := startServer(t, h, nil)
	a := g.clone(t, s.url, writeToken)
	c := g.commit(t, a, "first", map[string]string{"a.yaml": "a\n"})
	out, err := g.run(t, a, "push", "origin", "HEAD:main")
	if err == nil || !strings.Contains(out, "remote: kiln: Deployment web: 0 of 3 replicas available") || !strings.Contains(out, "(deploy failed)") {
		t.Errorf("push: %v\n%s", err, out)
	}
	if got := g.remoteRef(t, s.url, "refs/heads/main"); got != c {
		t.Errorf("main = %q, want %s", got, c)
	}
}

// Two pushes from the same starting point: one wins, the other is told
// to fetch first, and the branch holds the winner.
func TestServer_push_concurrent(t *testing.T) {
	g := newGit(t)
	var adverts atomic.Int32
	bothAdvertised := make(chan struct{})
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("service") == "git-receive-pack" && adverts.Add(1) == 3 {
				close(bothAdvertised)
			}
			next.ServeHTTP(w, r)
		})
	}
	h := &hooks{}
	s := startServer(t, h, wrap)
	a := g.clone(t, s.url, writeToken)
	g.commit(t, a, "base", map[string]string{"a.yaml": "a\n"})
	g.must(t, a, "push", "-q", "origin", "HEAD:main") // advertisement 1
	b := g.clone(t, s.url, writeToken)
	ca := g.commit(t, a, "from a", map[string]string{"a.yaml": "from a\n"})
	cb := g.commit(t, b, "from b", map[string]string{"b.yaml": "from b\n"})

	// Hold the first check until both clients have read the refs, so
	// that both push from the same old value and the server decides.
	h.setCheck(func(ctx context.Context, _ *gitserver.Push, _ gitserver.Update) error {
		select {
		case <-bothAdvertised:
		case <-time.After(10 * time.Second):
		}
		return nil
	})
	type result struct {
		out string
		err error
	}
	res := make([]result, 2)
	var wg sync.WaitGroup
	for i, dir := range []string{a, b} {
		wg.Go(func() {
			res[i].out, res[i].err = g.run(t, dir, "push", "origin", "HEAD:main")
		})
	}
	wg.Wait()
	won := -1
	for i, r := range res {
		if r.err == nil {
			if won >= 0 {
				t.Fatalf("both pushes succeeded:\n%s\n%s", res[0].out, res[1].out)
			}
			won = i
		}
	}
	if won < 0 {
		t.Fatalf("both pushes failed:\n%s\n%s", res[0].out, res[1].out)
	}
	lost := res[1-won]
	t.Logf("losing push:\n%s", lost.out)
	if !strings.Contains(lost.out, "fetch first") {
		t.Errorf("losing push not told to fetch first:\n%s", lost.out)
	}
	want := []string{ca, cb}[won]
	if got := g.remoteRef(t, s.url, "refs/heads/main"); got != want {
		t.Errorf("main = %s, want the winner %s", got, want)
	}
}

// No token, or a read-only token, cannot push; no token cannot clone.
func TestServer_auth(t *testing.T) {
	g := newGit(t)
	s := startServer(t, &hooks{}, nil)
	if out, err := g.run(t, "", "clone", "-q", s.url, filepath.Join(t.TempDir(), "x")); err == nil {
		t.Errorf("clone without a token succeeded:\n%s", out)
	}
	a := g.clone(t, s.url, readToken)
	g.commit(t, a, "first", map[string]string{"a.yaml": "a\n"})
	out, err := g.run(t, a, "push", "origin", "HEAD:main")
	if err == nil || !strings.Contains(out, "403") {
		t.Errorf("push with a read-only token: %v\n%s", err, out)
	}
	out, err = g.run(t, a, "-c", "http.extraHeader=", "push", "origin", "HEAD:main")
	if err == nil {
		t.Errorf("push without a token succeeded:\n%s", out)
	}
	// A token as the Basic password works too (credential helpers).
	g.must(t, a, "-c", "http.extraHeader=", "push", "-q", strings.Replace(s.url, "http://", "http://kiln:"+writeToken+"@", 1), "HEAD:main")
}
