//go:build !linux

package dir

import (
	"io/fs"
	"os"
)

// fileStat is empty here: without a stat identity nothing is cached, and
// every read reads every file (kiln's supported platform is Linux).
type fileStat struct{}

func (fileStat) key() fileKey { return fileKey{} }

func (fileStat) changedAt() int64 { return 0 }

func statOf(fs.FileInfo) (fileStat, bool) { return fileStat{}, false }

func statAt(*os.File, string) (fileStat, bool) { return fileStat{}, false }
