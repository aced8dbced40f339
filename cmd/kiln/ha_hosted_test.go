package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/components/testenv"
)

// A hosted source on two servers sharing a datastore: a push to the
// server that does not run the reconciler is deployed by the one that
// does, both serve the same history, and after the leader dies a push to
// the survivor is deployed on top of everything acknowledged before.
func TestHA_hostedPushToEitherServer(t *testing.T) {
	gitBin, err := exec.LookPath("git")
	kilnRequire(t, "git on PATH", err == nil)
	bin := kilnBuild(t, t.TempDir())
	cluster := testenv.StartEtcdCluster(t, 3)
	token := haToken(t)
	ctx := t.Context()

	cfgFile := filepath.Join(t.TempDir(), "kiln.yaml")
	if err := os.WriteFile(cfgFile, []byte("pushWait: 30s\nsources:\n- name: app\n  kind: hosted\n  namespace: ha\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s1 := startHAServer(t, bin, cluster, "s1", token, "--config", cfgFile)
	s1.ready(t)
	haEventually(t, "s1 leads the reconciler", 30*time.Second, func() bool {
		return leaseHolder(ctx, s1.cs, reconcilerLease) == s1.identity()
	})
	s2 := startHAServer(t, bin, cluster, "s2", token, "--config", cfgFile)
	s2.ready(t)

	// One CA and one admin token for both (the shared bootstrap).
	tok, err := os.ReadFile(filepath.Join(s1.proc.dataDir, "tls", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	e := &pushEnv{token: strings.TrimSpace(string(tok)), caFile: filepath.Join(s1.proc.dataDir, "tls", "ca.crt"), home: t.TempDir(), gitBin: gitBin}
	url := func(s *haServer) string { return "https://" + s.proc.addr + "/git/app.git" }
	for _, s := range []*haServer{s1, s2} {
		haEventually(t, "git server of "+s.name, 30*time.Second, func() bool {
			_, err := e.git(t, "", "ls-remote", url(s))
			return err == nil
		})
	}

	// Commit and push to s2, which does not run the reconciler: the push
	// reports the deploy that s1 made.
	work := filepath.Join(t.TempDir(), "work")
	e.mustGit(t, "", "clone", "-q", url(s2), work)
	commit := func(name string) string {
		t.Helper()
		doc := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {k: v}\n"
		if err := os.WriteFile(filepath.Join(work, name+".yaml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(work, "ns.yaml")); err != nil {
			if err := os.WriteFile(filepath.Join(work, "ns.yaml"), []byte("apiVersion: v1\nkind: Namespace\nmetadata: {name: ha}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		e.mustGit(t, work, "add", "-A")
		e.mustGit(t, work, "commit", "-q", "-m", "add "+name)
		return e.mustGit(t, work, "rev-parse", "HEAD")
	}
	first := commit("via-s2")
	out, err := e.git(t, work, "push", url(s2), "HEAD:main")
	if err != nil || !strings.Contains(out, "deployed main@"+first[:7]) {
		t.Fatalf("push to s2: %v\n%s", err, out)
	}
	if !haConfigMapExists(ctx, s1.cs, "ha", "via-s2") {
		t.Fatal("the push to s2 was acknowledged, but its ConfigMap is not there")
	}
	// s1 serves the commit s2 took.
	haEventually(t, "s1 serves the commit pushed to s2", 10*time.Second, func() bool {
		out, err := e.git(t, "", "ls-remote", url(s1), "refs/heads/main")
		return err == nil && strings.HasPrefix(out, first)
	})

	// A push to s1 with the history of s2 is a fast-forward there too.
	second := commit("via-s1")
	if out, err := e.git(t, work, "push", url(s1), "HEAD:main"); err != nil || !strings.Contains(out, "deployed main@"+second[:7]) {
		t.Fatalf("push to s1: %v\n%s", err, out)
	}
	// A push built on a stale tip is refused by either server.
	e.mustGit(t, work, "reset", "-q", "--hard", first)
	commit("stale")
	if out, err := e.git(t, work, "push", url(s2), "HEAD:main"); err == nil || !strings.Contains(out, "rejected") {
		t.Fatalf("a push on a stale tip to s2 was not refused: %v\n%s", err, out)
	}
	e.mustGit(t, work, "reset", "-q", "--hard", second)

	// The leader dies; a push to the survivor is deployed once it has
	// taken over, and what s1 acknowledged is still there.
	s1.kill(t)
	third := commit("after-kill")
	out, err = e.git(t, work, "push", url(s2), "HEAD:main")
	if err != nil || !strings.Contains(out, "deployed main@"+third[:7]) {
		t.Fatalf("push to the survivor: %v\n%s", err, out)
	}
	for _, name := range []string{"via-s2", "via-s1", "after-kill"} {
		if !haConfigMapExists(ctx, s2.cs, "ha", name) {
			t.Errorf("ConfigMap %s missing after the leader's death", name)
		}
	}
	if out := e.mustGit(t, "", "ls-remote", url(s2), "refs/heads/main"); !strings.HasPrefix(out, third) {
		t.Errorf("s2's main is %q, want %s", out, third)
	}
	if t.Failed() {
		t.Logf("s2 log tail:\n%s", haTail(s2.logs.String(), 60))
	}
}
