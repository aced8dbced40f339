package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"kiln.dev/kiln/components/testenv"
)

// TestStateFS walks the state tmpfs through a node's life: mounted at the
// first start, reused by a restart, kept while a task bundle is in it,
// removed once none is; and never mounted over a disk state that holds
// bundles of running tasks.
func TestStateFS(t *testing.T) {
	testenv.Require(t, "root (mounts)", os.Geteuid() == 0)
	dir := filepath.Join(t.TempDir(), "state")
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })

	if err := mountStateFS(dir); err != nil {
		t.Fatal(err)
	}
	if fs := fsType(t, dir); fs != unix.TMPFS_MAGIC {
		t.Fatalf("state is on filesystem %#x, want tmpfs", fs)
	}
	bundle := filepath.Join(dir, taskBundles, "node-a", "c1")
	if err := os.MkdirAll(bundle, 0o711); err != nil {
		t.Fatal(err)
	}
	// A restart (after kill -9) finds its mount and keeps it, bundles and
	// all, rather than stacking a second one on top.
	if err := mountStateFS(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bundle); err != nil {
		t.Fatalf("the restart hid the running task's bundle: %v", err)
	}
	if n := mountsAt(t, dir); n != 1 {
		t.Fatalf("%d mounts on %s, want 1", n, dir)
	}
	if err := unmountStateFS(dir); err != nil {
		t.Fatal(err)
	}
	if !isMountpoint(dir) {
		t.Fatal("the stop unmounted the state under a running task")
	}
	if err := os.Remove(bundle); err != nil {
		t.Fatal(err)
	}
	if err := unmountStateFS(dir); err != nil {
		t.Fatal(err)
	}
	if isMountpoint(dir) {
		t.Fatal("the state is still mounted with no task left")
	}

	// A disk state with a task bundle (an older kiln's) stays visible.
	disk := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(filepath.Join(disk, taskBundles, "node-a", "c2"), 0o711); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(disk, unix.MNT_DETACH) })
	if err := mountStateFS(disk); err != nil {
		t.Fatal(err)
	}
	if isMountpoint(disk) {
		t.Fatal("a tmpfs was mounted over a state holding a running task's bundle")
	}
}

func fsType(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Type
}

// mountsAt counts the mounts whose mount point is dir.
func mountsAt(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}
