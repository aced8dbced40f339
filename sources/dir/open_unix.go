//go:build unix

package dir

import (
	"io/fs"
	"syscall"
)

// Files are opened non-blocking and without acquiring a controlling
// terminal: the walk only opens entries it listed as regular files or
// directories, but an entry swapped for a FIFO or device between listing
// and opening must not hang or disturb the process (RELIABILITY.md (b)8).
const (
	fileOpenFlags = syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOCTTY
	dirOpenFlags  = fileOpenFlags | syscall.O_DIRECTORY
)

// fileKey identifies a file independently of the path it was reached by.
type fileKey struct{ dev, ino uint64 }

func keyOf(fi fs.FileInfo) (fileKey, bool) {
	// The conversions are no-ops on Linux; Dev and Ino differ in type
	// on other Unixes.
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, false
	}
	return fileKey{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}
