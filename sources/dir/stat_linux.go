package dir

import (
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileStat is what the kernel says of a file without reading it. Two
// equal fileStats of the same path, the later one taken at least
// racyWindow after the file's last change, mean the same content: any
// write, truncate, chmod or rename onto the path changes the ctime, which
// no user can set, and a replaced file has another inode.
type fileStat struct {
	mode         uint32
	size         int64
	mtime, ctime int64 // nanoseconds since the epoch
	dev, ino     uint64
}

func (s fileStat) key() fileKey { return fileKey{dev: s.dev, ino: s.ino} }

func (s fileStat) changedAt() int64 { return s.ctime }

// statOf is the fileStat of an opened file's FileInfo.
func statOf(fi fs.FileInfo) (fileStat, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}, false
	}
	return fileStat{
		mode:  st.Mode,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		dev:   st.Dev,
		ino:   st.Ino,
	}, true
}

// statAt stats entry name of the open directory dir without following a
// symlink. It resolves nothing but that one name under a directory the
// walk already checked, so it needs no os.Root: it cannot leave the tree.
// Any failure reports false, and the caller reads the file the full way.
func statAt(dir *os.File, name string) (fileStat, bool) {
	rc, err := dir.SyscallConn()
	if err != nil {
		return fileStat{}, false
	}
	var st unix.Stat_t
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.Fstatat(int(fd), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil || serr != nil {
		return fileStat{}, false
	}
	return fileStat{
		mode:  st.Mode,
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
		dev:   st.Dev,
		ino:   st.Ino,
	}, true
}
