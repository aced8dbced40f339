package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// killNodeProcesses SIGKILLs what a node left running after a failed
// test: the processes of its containers (in cgroups named after its
// containerd namespace ns, the node name) and its shims (started with
// -namespace ns). They are the test's own, through its kiln. It returns
// the cgroup directories named after ns.
func killNodeProcesses(t *testing.T, ns string) []string {
	pids := map[int]bool{}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	if d := "/sys/fs/cgroup/" + ns; mnExists(d) {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.Name() == "cgroup.procs" {
				b, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						pids[pid] = true
					}
				}
			}
			return nil
		})
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.Contains(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, ns) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				pids[pid] = true
			}
		}
	}
	for pid := range pids {
		t.Logf("cleanup: killing leftover process %d of node %s", pid, ns)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return dirs
}

// unmountUnder detaches every mount under dir (pods' netns, rootfs of
// containers left behind), children first, so the temp dir can go.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	f.Close()
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		t.Logf("cleanup: unmounting leftover %s", m)
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// removeCgroups removes the empty cgroups runc leaves under dirs,
// children first.
func removeCgroups(dirs []string) {
	for _, dir := range dirs {
		var sub []string
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			_ = unix.Rmdir(sub[i])
		}
	}
}
