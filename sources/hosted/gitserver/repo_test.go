package gitserver_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"kiln.dev/kiln/sources/hosted/gitserver"
)

// Init creates a repository once, however many callers race, and leaves
// an existing one alone.
func TestInit_concurrentAndIdempotent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app.git")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = gitserver.Init(dir, "main") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Init %d: %v", i, err)
		}
	}
	head, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil || string(head) != "ref: refs/heads/main\n" {
		t.Errorf("HEAD = %q, %v; want ref: refs/heads/main", head, err)
	}
	if err := gitserver.Init(dir, "other"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, "HEAD")); string(again) != string(head) {
		t.Errorf("Init of an existing repository changed HEAD to %q", again)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".init-*"))
	if len(left) > 0 {
		t.Errorf("Init left temporary directories: %v", left)
	}
	if err := gitserver.Init(filepath.Join(t.TempDir(), "x.git"), "bad..name"); err == nil {
		t.Error("Init accepted branch bad..name")
	}
}
