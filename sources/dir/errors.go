package dir

import "errors"

// Reasons a read of the tree fails. A failed read yields a Result whose
// Err wraps one of these (or an I/O error); apart from ErrRoot it is a
// *FileError, so callers can both name the file and test the cause with
// errors.Is.
var (
	// ErrRoot is returned when the root directory itself cannot be opened
	// or listed (deleted, replaced by a file, permission denied). The
	// source then polls until the root is back.
	ErrRoot = errors.New("root directory unavailable")
	// ErrNotRegular is returned for a device, FIFO, socket or other
	// non-regular file; such files are never opened for reading.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlink is returned for a symlink that does not resolve to a
	// regular file inside the root: it leaves the root, is absolute,
	// dangles, or points at a directory or special file.
	ErrSymlink = errors.New("symlink does not resolve to a regular file inside the root")
	// ErrFileTooLarge is returned for a file over sources.MaxFileBytes.
	ErrFileTooLarge = errors.New("file too large")
	// ErrTreeTooLarge is returned when the files add up to more than
	// sources.MaxTotalBytes.
	ErrTreeTooLarge = errors.New("tree too large")
	// ErrTooManyFiles is returned when the tree holds more than
	// sources.MaxFiles files.
	ErrTooManyFiles = errors.New("too many files")
	// ErrTooManyEntries is returned when the directories hold more than
	// 2×sources.MaxFiles entries in all (files, sub-directories, anything
	// else), which bounds the time and memory of a walk over a hostile
	// tree.
	ErrTooManyEntries = errors.New("too many directory entries")
	// ErrTooDeep is returned for a directory nested more than 64 levels
	// below the root.
	ErrTooDeep = errors.New("directory tree too deep")
)

// errVanished marks a read that lost a race with a change to the tree (an
// entry listed a moment ago is gone). Such a read is retried, not emitted:
// the change that removed the entry has already queued another read.
var errVanished = errors.New("entry vanished during read")

// FileError is the error of a read that failed because of one path.
type FileError struct {
	// Path is slash-separated and relative to the root; "." is the root.
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *FileError) Unwrap() error { return e.Err }
