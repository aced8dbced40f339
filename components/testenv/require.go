package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// Require skips the test when a prerequisite is missing, unless
// KILN_E2E=require (CI), where a missing prerequisite is a failure: CI
// must prove the feature, not skip it.
func Require(t testing.TB, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("KILN_E2E") == "require" {
		t.Fatalf("prerequisite missing: %s (KILN_E2E=require)", what)
	}
	t.Skipf("prerequisite missing: %s (set KILN_E2E=require to fail instead)", what)
}

// Kubectl returns the path of the kubectl binary, or fails/skips as
// Require does.
func Kubectl(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	Require(t, "kubectl on PATH", err == nil)
	return p
}

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
	buildOut  []byte
)

// Binary builds cmd/kiln once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..") // components/testenv
		dir, err := os.MkdirTemp("", "kiln-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "kiln")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/kiln")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build kiln: %v\n%s", buildErr, buildOut)
	}
	return buildPath
}

// RemoveBinary removes what Binary built (about 150 MB in the temp dir);
// a package whose tests call Binary calls it from TestMain after m.Run.
func RemoveBinary() {
	if buildPath != "" {
		_ = os.RemoveAll(filepath.Dir(buildPath))
	}
}
