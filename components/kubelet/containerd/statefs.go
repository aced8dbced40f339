package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// taskBundles is where containerd keeps a bundle per task (the shim's
// socket, the spec, the rootfs mount) under its state dir.
const taskBundles = "io.containerd.runtime.v2.task"

// mountStateFS puts containerd's state dir on a tmpfs, as /run is on most
// systems (k3s keeps it in /run/k3s/containerd). The state is per boot
// anyway, and on a disk filesystem the inodes of every task's bundle and
// runc state cost a noticeable share of the CPU under a burst of pod
// starts (pod-startup: about a tenth). An earlier kiln's mount (kill -9, restart) is reused,
// so running shims keep their sockets; state on disk that holds bundles
// of running tasks is left alone rather than hidden under a new mount.
func mountStateFS(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if isMountpoint(dir) || hasBundles(dir) {
		return nil
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0711"); err != nil {
		return fmt.Errorf("mount tmpfs on containerd state %s: %w", dir, err)
	}
	return nil
}

// unmountStateFS removes the state tmpfs once no task is left in it (a
// stop after every pod is gone, as at the end of a test); with tasks
// left, their shims still use it and it stays for the next start.
func unmountStateFS(dir string) error {
	if !isMountpoint(dir) || hasBundles(dir) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount containerd state %s: %w", dir, err)
	}
	return nil
}

// hasBundles reports whether any namespace under dir has a task bundle.
func hasBundles(dir string) bool {
	nss, _ := os.ReadDir(filepath.Join(dir, taskBundles))
	for _, ns := range nss {
		if ents, _ := os.ReadDir(filepath.Join(dir, taskBundles, ns.Name())); len(ents) > 0 {
			return true
		}
	}
	return false
}

// isMountpoint reports whether dir is the root of a mount: it sits on
// another device than its parent.
func isMountpoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}
