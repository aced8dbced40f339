package git

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

func TestSource_Run_file(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.write(map[string]string{
		"deploy/app.yaml": "kind: Deployment\n",
		"deploy/svc.yaml": "kind: Service\n",
		"README.md":       "hello\n",
	})
	first := r.commit("first commit\n\nwith a body")

	src := start(t, Config{URL: "file://" + r.bare, Interval: time.Hour})
	snap := src.snapshot(t)
	if want := "main@sha1:" + first; snap.Revision != want {
		t.Errorf("Revision = %q, want %q", snap.Revision, want)
	}
	if snap.Source != "test" {
		t.Errorf("Source = %q", snap.Source)
	}
	var paths []string
	for _, f := range snap.Files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, ","), "README.md,deploy/app.yaml,deploy/svc.yaml"; got != want {
		t.Errorf("paths = %s, want %s", got, want)
	}
	if got := fileMap(snap)["deploy/app.yaml"]; got != "kind: Deployment\n" {
		t.Errorf("deploy/app.yaml = %q", got)
	}
	c := snap.Commit
	if c.Hash != first || c.Message != "first commit\n\nwith a body\n" || c.Author != "Ada Lovelace <ada@example.com>" {
		t.Errorf("Commit = %+v", c)
	}
	at, _ := strconv.ParseInt(r.run(r.work, "log", "-1", "--format=%at"), 10, 64)
	if !c.Time.Equal(time.Unix(at, 0)) {
		t.Errorf("Commit.Time = %v, want %v", c.Time, time.Unix(at, 0))
	}
	if snap.FetchedAt.IsZero() {
		t.Error("FetchedAt is zero")
	}

	// Nothing new: a trigger sends nothing.
	src.Trigger()
	src.quiet(t)

	r.write(map[string]string{"deploy/app.yaml": "kind: Deployment\nv: 2\n"})
	second := r.commit("second")
	src.Trigger()
	snap = src.snapshot(t)
	if snap.Commit.Hash != second || snap.Revision != "main@sha1:"+second {
		t.Fatalf("after trigger: %s, want %s", snap.Revision, second)
	}
	if got := fileMap(snap)["deploy/app.yaml"]; got != "kind: Deployment\nv: 2\n" {
		t.Errorf("deploy/app.yaml = %q", got)
	}
}

func TestSource_Run_http(t *testing.T) {
	root := t.TempDir()
	r := newRepo(t, root, "main")
	r.write(map[string]string{"a.yaml": "a: 1\n"})
	first := r.commit("first")
	srv := newGitServer(t, root, serverOptions{})

	// Polling alone (no trigger) picks up a new commit.
	src := start(t, Config{URL: srv.url("remote.git"), Interval: 100 * time.Millisecond})
	snap := src.snapshot(t)
	if snap.Revision != "main@sha1:"+first || fileMap(snap)["a.yaml"] != "a: 1\n" {
		t.Fatalf("first snapshot: %s %v", snap.Revision, fileMap(snap))
	}
	r.write(map[string]string{"b.yaml": "b: 2\n"})
	second := r.commit("second")
	snap = src.snapshot(t)
	if snap.Commit.Hash != second || len(snap.Files) != 2 {
		t.Fatalf("second snapshot: %s %v", snap.Revision, fileMap(snap))
	}
	// The clone is shallow: the first commit was never fetched a second
	// time, and the second came with depth 1.
	shallow, err := os.ReadFile(filepath.Join(src.cfg.WorkDir, "repo.git", "shallow"))
	if err != nil || !strings.Contains(string(shallow), first) {
		t.Errorf("shallow file = %q, %v; want it to list %s", shallow, err, first)
	}
}

func TestSource_Run_httpToken(t *testing.T) {
	const token = "tok-3f9c2a-canary"
	root := t.TempDir()
	r := newRepo(t, root, "main")
	r.write(map[string]string{"a.yaml": "a: 1\n"})
	first := r.commit("first")
	srv := newGitServer(t, root, serverOptions{token: token})

	creds := func(content string) string {
		p := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secrets := []string{token, "wrong-canary-1", "wrong-canary-2", "wrong-canary-3"}
	noSecrets := func(t *testing.T, what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s contains secret %q: %s", what, sec, s)
			}
		}
	}

	t.Run("token file", func(t *testing.T) {
		src := start(t, Config{URL: srv.url("remote.git"), CredentialsFile: creds(token + "\n"), Interval: time.Hour})
		if snap := src.snapshot(t); snap.Commit.Hash != first {
			t.Fatalf("snapshot of %s, want %s", snap.Commit.Hash, first)
		}
		// Server down with the right token: the error does not carry it.
		srv.stop()
		src.Trigger()
		err := src.failure(t)
		mustIs(t, err, ErrFetch)
		noSecrets(t, "error", err.Error())
		srv.start()
		src.stop()
		noSecrets(t, "logs", src.logs.String())
	})
	t.Run("no credentials", func(t *testing.T) {
		src := start(t, Config{URL: srv.url("remote.git"), Interval: time.Hour})
		err := src.failure(t)
		mustIs(t, err, ErrFetch, transport.ErrAuthenticationRequired)
		if !strings.Contains(err.Error(), srv.url("remote.git")) {
			t.Errorf("error %q does not name the URL", err)
		}
	})
	cases := []struct {
		name string
		cfg  Config
	}{
		{"wrong token", Config{URL: srv.url("remote.git"), CredentialsFile: creds("wrong-canary-1")}},
		{"wrong password", Config{URL: srv.url("remote.git"), CredentialsFile: creds("git:wrong-canary-2\n")}},
		{"userinfo in URL", Config{URL: "http://git:wrong-canary-3@" + srv.addr + "/remote.git"}},
		{"token as URL user", Config{URL: "http://wrong-canary-3@" + srv.addr + "/remote.git"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Interval = time.Hour
			src := start(t, tc.cfg)
			err := src.failure(t)
			mustIs(t, err, ErrFetch, transport.ErrAuthenticationRequired)
			noSecrets(t, "error", err.Error())
			if strings.Contains(err.Error(), "@") {
				t.Errorf("error %q holds userinfo", err)
			}
			src.stop()
			noSecrets(t, "logs", src.logs.String())
		})
	}
}

func TestSource_Run_refs(t *testing.T) {
	root := t.TempDir()
	r := newRepo(t, root, "main")
	r.write(map[string]string{"v.yaml": "v: 0\n"})
	c0 := r.commit("zero") // no ref will point at it
	r.write(map[string]string{"v.yaml": "v: 1\n", "deploy/prod/app.yaml": "prod: 1\n", "deploy/dev/app.yaml": "dev: 1\n"})
	c1 := r.commit("one")
	r.run(r.work, "tag", "-a", "v1.0.0", "-m", "release 1.0.0")
	r.run(r.work, "tag", "light", c1)
	r.write(map[string]string{"v.yaml": "v: 2\n"})
	c2 := r.commit("two")
	r.run(r.work, "push", "-q", "origin", "v1.0.0", "light")
	r.run(r.work, "checkout", "-q", "-b", "dev")
	r.write(map[string]string{"v.yaml": "v: dev\n"})
	cDev := r.commit("dev")
	r.run(r.work, "checkout", "-q", "main")

	plain := newGitServer(t, root, serverOptions{})
	reachable := newGitServer(t, root, serverOptions{allowReachableSHA1: true})
	urls := map[string]string{
		"file":           "file://" + r.bare,
		"http":           plain.url("remote.git"),
		"http+reachable": reachable.url("remote.git"),
	}
	cases := []struct {
		name, ref, subpath string
		commit, revision   string
		v                  string // content of v.yaml, "" if absent
		paths              string
	}{
		{name: "default branch", commit: c2, revision: "main@sha1:" + c2, v: "v: 2\n"},
		{name: "branch", ref: "dev", commit: cDev, revision: "dev@sha1:" + cDev, v: "v: dev\n"},
		{name: "full branch name", ref: "refs/heads/dev", commit: cDev, revision: "dev@sha1:" + cDev, v: "v: dev\n"},
		{name: "annotated tag", ref: "v1.0.0", commit: c1, revision: "v1.0.0@sha1:" + c1, v: "v: 1\n"},
		{name: "lightweight tag", ref: "refs/tags/light", commit: c1, revision: "light@sha1:" + c1, v: "v: 1\n"},
		{name: "tip commit", ref: c2, commit: c2, revision: "sha1:" + c2, v: "v: 2\n"},
		{name: "tagged commit", ref: c1, commit: c1, revision: "sha1:" + c1, v: "v: 1\n"},
		{name: "old commit", ref: strings.ToUpper(c0), commit: c0, revision: "sha1:" + c0, v: "v: 0\n"},
		{name: "subpath", ref: "main", subpath: "deploy/prod/", commit: c2, revision: "main@sha1:" + c2, paths: "app.yaml"},
	}
	for scheme, url := range urls {
		for _, tc := range cases {
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				src := start(t, Config{URL: url, Ref: tc.ref, Subpath: tc.subpath, Interval: time.Hour})
				snap := src.snapshot(t)
				if snap.Commit.Hash != tc.commit || snap.Revision != tc.revision {
					t.Errorf("got %s (commit %s), want %s", snap.Revision, snap.Commit.Hash, tc.revision)
				}
				if tc.name == "old commit" && scheme != "file" {
					// A server that hands out any reachable commit gets a
					// shallow want; git http-backend's default only hands
					// out ref tips, so the source fetches them in full.
					_, err := os.Stat(filepath.Join(src.cfg.WorkDir, "repo.git", "shallow"))
					if shallow := err == nil; shallow != (scheme == "http+reachable") {
						t.Errorf("shallow clone = %v", shallow)
					}
				}
				if tc.v != "" && fileMap(snap)["v.yaml"] != tc.v {
					t.Errorf("v.yaml = %q, want %q", fileMap(snap)["v.yaml"], tc.v)
				}
				if tc.paths != "" {
					var paths []string
					for _, f := range snap.Files {
						paths = append(paths, f.Path)
					}
					if got := strings.Join(paths, ","); got != tc.paths {
						t.Errorf("paths = %s, want %s", got, tc.paths)
					}
				}
			})
		}
	}

	errCases := []struct {
		name, ref, subpath string
		is                 error
	}{
		{name: "missing branch", ref: "nope", is: ErrRefNotFound},
		{name: "missing commit", ref: strings.Repeat("ab", 20), is: ErrRefNotFound},
		{name: "missing subpath", subpath: "deploy/staging", is: ErrSubpathNotFound},
		{name: "subpath is a file", subpath: "v.yaml", is: ErrSubpathNotFound},
	}
	for _, tc := range errCases {
		t.Run("file/"+tc.name, func(t *testing.T) {
			src := start(t, Config{URL: urls["file"], Ref: tc.ref, Subpath: tc.subpath, Interval: time.Hour})
			err := src.failure(t)
			mustIs(t, err, tc.is)
		})
	}
}

func TestSource_Run_remoteHEAD(t *testing.T) {
	root := t.TempDir()
	r := newRepo(t, root, "trunk")
	r.write(map[string]string{"a.yaml": "a\n"})
	c := r.commit("on trunk")
	srv := newGitServer(t, root, serverOptions{})
	for name, url := range map[string]string{"file": "file://" + r.bare, "http": srv.url("remote.git")} {
		t.Run(name, func(t *testing.T) {
			src := start(t, Config{URL: url, Interval: time.Hour})
			if snap := src.snapshot(t); snap.Revision != "trunk@sha1:"+c {
				t.Errorf("Revision = %s, want trunk@sha1:%s", snap.Revision, c)
			}
		})
	}
}

func TestSource_Run_serverDown(t *testing.T) {
	root := t.TempDir()
	r := newRepo(t, root, "main")
	r.write(map[string]string{"a.yaml": "a\n"})
	c := r.commit("first")
	srv := newGitServer(t, root, serverOptions{})

	src := start(t, Config{URL: srv.url("remote.git"), Interval: 200 * time.Millisecond})
	if snap := src.snapshot(t); snap.Commit.Hash != c {
		t.Fatalf("snapshot of %s, want %s", snap.Commit.Hash, c)
	}
	srv.stop()
	err := src.failure(t)
	mustIs(t, err, ErrFetch)
	if !strings.Contains(err.Error(), srv.url("remote.git")) {
		t.Errorf("error %q does not name the URL", err)
	}
	// Retries keep failing, each one a Result, never an empty snapshot.
	src.failure(t)
	srv.start()
	// Back up: the same commit is sent again, so that the consumer knows
	// the source is healthy.
	if snap := src.snapshotOf(t, c); len(snap.Files) != 1 {
		t.Errorf("files = %v", fileMap(snap))
	}
}

func TestSource_Run_forcePush(t *testing.T) {
	root := t.TempDir()
	r := newRepo(t, root, "main")
	r.write(map[string]string{"a.yaml": "a: 1\n"})
	base := r.commit("base")
	r.write(map[string]string{"a.yaml": "a: 2\n"})
	old := r.commit("to be rewritten")
	srv := newGitServer(t, root, serverOptions{})

	for name, url := range map[string]string{"file": "file://" + r.bare, "http": srv.url("remote.git")} {
		t.Run(name, func(t *testing.T) {
			src := start(t, Config{URL: url, Interval: time.Hour})
			if snap := src.snapshot(t); snap.Commit.Hash != old {
				t.Fatalf("snapshot of %s, want %s", snap.Commit.Hash, old)
			}
			r.run(r.work, "reset", "-q", "--hard", base)
			r.write(map[string]string{"a.yaml": "a: rewritten " + name + "\n"})
			rewritten := r.commit("rewritten")
			// Make the old commit unreachable and gone on the remote.
			r.run(r.bare, "reflog", "expire", "--expire=now", "--all")
			r.run(r.bare, "gc", "-q", "--prune=now")
			src.Trigger()
			snap := src.snapshot(t)
			if snap.Commit.Hash != rewritten || fileMap(snap)["a.yaml"] != "a: rewritten "+name+"\n" {
				t.Fatalf("after force-push: %s %v, want %s", snap.Revision, fileMap(snap), rewritten)
			}
			// Back to a history the clone has partly seen.
			r.run(r.work, "reset", "-q", "--hard", base)
			r.write(map[string]string{"a.yaml": "a: again " + name + "\n"})
			again := r.commit("again")
			src.Trigger()
			if snap := src.snapshot(t); snap.Commit.Hash != again {
				t.Fatalf("after second force-push: %s, want %s", snap.Commit.Hash, again)
			}
			old = again
		})
	}
}

func TestSource_Run_hostileTree(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.write(map[string]string{"apps/ok.yaml": "ok\n"})
	r.symlink("../../etc/passwd", "apps/passwd")
	r.commit("symlink out")

	src := start(t, Config{URL: "file://" + r.bare, Interval: time.Hour})
	err := src.failure(t)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != "apps/passwd" {
		t.Fatalf("error %v does not name apps/passwd", err)
	}
	mustIs(t, err, ErrSymlink)
	if !strings.Contains(err.Error(), "apps/passwd") {
		t.Errorf("message %q does not name the path", err)
	}
	// The same bad commit is not reported again on every poll.
	src.Trigger()
	src.quiet(t)

	// 5 MiB blob.
	r.remove("apps/passwd")
	r.write(map[string]string{"apps/big.bin": strings.Repeat("x", 5<<20)})
	r.commit("big")
	src.Trigger()
	err = src.failure(t)
	mustIs(t, err, ErrFileTooLarge)
	if !errors.As(err, &fe) || fe.Path != "apps/big.bin" {
		t.Fatalf("error %v does not name apps/big.bin", err)
	}

	// A submodule entry is skipped; good symlinks are followed.
	r.remove("apps/big.bin")
	r.symlink("ok.yaml", "apps/link.yaml")
	r.symlink("../apps/link.yaml", "other/chain.yaml")
	r.run(r.work, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",vendor/sub")
	fixed := r.commit("fixed")
	src.Trigger()
	snap := src.snapshot(t)
	if snap.Commit.Hash != fixed {
		t.Fatalf("snapshot of %s, want %s", snap.Commit.Hash, fixed)
	}
	want := map[string]string{"apps/ok.yaml": "ok\n", "apps/link.yaml": "ok\n", "other/chain.yaml": "ok\n"}
	got := fileMap(snap)
	if len(got) != len(want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("%s = %q, want %q", p, got[p], c)
		}
	}
}

func TestSource_Run_symlinks(t *testing.T) {
	cases := []struct {
		name    string
		target  string // of the link at sub/dir/link
		subpath string
	}{
		{name: "absolute", target: "/etc/passwd"},
		{name: "escapes repo", target: "../../../x"},
		{name: "escapes subpath", target: "../../outside.yaml", subpath: "sub"},
		{name: "dangling", target: "missing.yaml"},
		{name: "directory", target: ".."},
		{name: "into dot-folder", target: "../.secret/key"},
		{name: "loop", target: "link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t, t.TempDir(), "main")
			r.write(map[string]string{"outside.yaml": "x\n", "sub/.secret/key": "k\n", "sub/dir/a.yaml": "a\n"})
			r.symlink(tc.target, "sub/dir/link")
			r.commit(tc.name)
			src := start(t, Config{URL: "file://" + r.bare, Subpath: tc.subpath, Interval: time.Hour})
			err := src.failure(t)
			mustIs(t, err, ErrSymlink)
			want := "sub/dir/link"
			if tc.subpath != "" {
				want = "dir/link"
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != want {
				t.Errorf("error %v does not name %s", err, want)
			}
		})
	}
}

func TestSource_Run_dotFolders(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.write(map[string]string{
		".github/workflows/ci.yaml": "ci\n",
		"apps/.cache/x.yaml":        "x\n",
		".sops.yaml":                "creation_rules: []\n",
		"apps/app.yaml":             "app\n",
	})
	r.commit("dots")
	src := start(t, Config{URL: "file://" + r.bare, Interval: time.Hour})
	snap := src.snapshot(t)
	var paths []string
	for _, f := range snap.Files {
		paths = append(paths, f.Path)
	}
	if got, want := strings.Join(paths, ","), ".sops.yaml,apps/app.yaml"; got != want {
		t.Errorf("paths = %s, want %s", got, want)
	}
}

func TestSource_Run_twice(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	r.commit("empty")
	src := start(t, Config{URL: "file://" + r.bare, Interval: time.Hour})
	if snap := src.snapshot(t); len(snap.Files) != 0 {
		t.Errorf("files = %v", fileMap(snap))
	}
	if err := src.Run(t.Context(), nil); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	src.stop()
	if _, err := os.Stat(filepath.Join(src.cfg.WorkDir, "repo.git")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("clone left behind after Run: %v", err)
	}
}

func TestSource_Run_emptyRemote(t *testing.T) {
	r := newRepo(t, t.TempDir(), "main")
	src := start(t, Config{URL: "file://" + r.bare, Interval: time.Hour})
	mustIs(t, src.failure(t), ErrFetch)
}

func TestSource_Trigger_neverBlocks(t *testing.T) {
	s, err := New(Config{Name: "n", URL: "file:///nowhere", WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	// Not running: triggers coalesce into the one buffered slot.
	for range 100 {
		s.Trigger()
	}
	if len(s.trigger) != 1 {
		t.Errorf("%d pending triggers, want 1", len(s.trigger))
	}
}

func TestSource_Run_freshClone(t *testing.T) {
	root := t.TempDir()
	r := newRepo(t, root, "main")
	r.write(map[string]string{"a.yaml": "0\n"})
	c := r.commit("0")
	srv := newGitServer(t, root, serverOptions{})
	src := start(t, Config{URL: srv.url("remote.git"), Interval: time.Hour}, func(s *Source) { s.maxPacks = 2 })
	packs := func() int {
		m, err := filepath.Glob(filepath.Join(src.cfg.WorkDir, "repo.git", "objects", "pack", "*.pack"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	src.snapshotOf(t, c)
	for i := range 5 {
		r.write(map[string]string{"a.yaml": strconv.Itoa(i+1) + "\n"})
		c = r.commit(strconv.Itoa(i + 1))
		src.Trigger()
		if snap := src.snapshotOf(t, c); fileMap(snap)["a.yaml"] != strconv.Itoa(i+1)+"\n" {
			t.Fatalf("a.yaml = %q", fileMap(snap)["a.yaml"])
		}
		if n := packs(); n > 2 {
			t.Fatalf("%d packs after %d fetches, want at most 2", n, i+2)
		}
	}
	// A fresh clone of an unchanged ref sends nothing.
	src.Trigger()
	src.Trigger()
	src.quiet(t)
}
