//go:build !unix

package dir

import (
	"io/fs"
	"os"
)

const (
	fileOpenFlags = os.O_RDONLY
	dirOpenFlags  = os.O_RDONLY
)

type fileKey struct{}

// keyOf cannot identify files here, so no symlink is followed: every
// symlink is reported as ErrSymlink (kiln's supported platform is Linux).
func keyOf(fs.FileInfo) (fileKey, bool) { return fileKey{}, false }
