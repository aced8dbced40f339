package dir

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"kiln.dev/kiln/sources"
)

const (
	// maxEntries bounds the directory entries one read lists (files,
	// directories, symlinks, anything else, dot-folders counted but not
	// entered). sources.MaxFiles alone would not bound a tree of empty
	// directories or special files.
	maxEntries = 2 * sources.MaxFiles
	// maxDepth bounds how deep the walk descends (the root is depth 0).
	// Real repositories are a few levels deep; a hostile or cyclic tree
	// (a bind mount of the root inside itself) must not recurse for as
	// long as the entry limit allows, building ever longer paths.
	maxDepth = 64
	// readDirBatch is how many entries are listed at a time, so that a
	// directory with millions of entries fails at maxEntries instead of
	// being read whole into memory.
	readDirBatch = 256
)

// limits bound one read. They are sources' limits except in tests, which
// use small ones to exercise them on small trees.
type limits struct {
	fileBytes, totalBytes int64
	files, entries, depth int
}

func defaultLimits() limits {
	return limits{
		fileBytes:  sources.MaxFileBytes,
		totalBytes: sources.MaxTotalBytes,
		files:      sources.MaxFiles,
		entries:    maxEntries,
		depth:      maxDepth,
	}
}

// reader reads one tree. It walks through an os.Root, so no path it
// opens can resolve outside the root, even if the tree changes during the
// walk; it never follows a symlink to a directory, and it follows a
// symlink to a file only when that file is itself part of the snapshot.
type reader struct {
	ctx  context.Context
	root *os.Root
	lim  limits
	// onDir, if set, is called with each directory's path before the
	// directory is listed (the watcher adds its watch there, so that no
	// change after the listing can go unnoticed).
	onDir func(rel string)

	// prev, if set, is the previous read's cache: a regular file whose
	// stat it vouches for is taken from it instead of being read. next
	// collects this read's cache; start is when this read began.
	prev, next *cache
	start      time.Time

	files    []sources.File
	byKey    map[fileKey][]byte // regular files read directly, for symlinks
	symlinks []string
	total    int64
	entries  int
}

// readTree reads every regular file under root into Files sorted by Path.
// Dot-folders are skipped. It fails with a *FileError naming the first
// offending path, ErrRoot, an errVanished-wrapped error when the tree
// changed during the read, or ctx's error.
func readTree(ctx context.Context, root *os.Root, lim limits, onDir func(rel string)) ([]sources.File, error) {
	files, _, err := readTreeCached(ctx, root, lim, onDir, nil)
	return files, err
}

// readTreeCached is readTree reusing what prev (nil: nothing) kept of the
// files that have not changed since, and returning the cache for the
// next read. Its result is the one readTree would give: the walk, its
// order, its checks and its limits are the same, and only the opening and
// reading of a regular file whose stat is unchanged is skipped. prev is
// not modified.
func readTreeCached(ctx context.Context, root *os.Root, lim limits, onDir func(rel string), prev *cache) ([]sources.File, *cache, error) {
	r := &reader{
		ctx: ctx, root: root, lim: lim, onDir: onDir, byKey: map[fileKey][]byte{},
		prev: prev, next: newCache(), start: time.Now(),
	}
	if prev != nil {
		r.files = make([]sources.File, 0, len(prev.files))
	}
	if err := r.walkDir(".", 0); err != nil {
		return nil, nil, err
	}
	// Symlinks are resolved last, once every file they may point at is
	// known.
	for _, p := range r.symlinks {
		if err := r.addSymlink(p); err != nil {
			return nil, nil, err
		}
	}
	slices.SortFunc(r.files, func(a, b sources.File) int { return cmp.Compare(a.Path, b.Path) })
	return r.files, r.next, nil
}

func (r *reader) walkDir(rel string, depth int) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	if depth > r.lim.depth {
		return &FileError{Path: rel, Err: fmt.Errorf("%w: more than %d levels", ErrTooDeep, r.lim.depth)}
	}
	if r.onDir != nil {
		r.onDir(rel)
	}
	dir, entries, err := r.list(rel)
	if err != nil {
		return err
	}
	// Kept open while the entries are handled: unchanged files are stat'ed
	// relative to it.
	defer dir.Close()
	for _, e := range entries {
		name := e.Name()
		p := path.Join(rel, name)
		dot := strings.HasPrefix(name, ".")
		switch t := e.Type(); {
		case t.IsDir():
			if dot {
				continue
			}
			if err := r.walkDir(p, depth+1); err != nil {
				return err
			}
		case t&fs.ModeSymlink != 0:
			r.symlinks = append(r.symlinks, p)
		case t.IsRegular():
			if r.addCached(dir, name, p) {
				continue
			}
			if err := r.addFile(p); err != nil {
				return err
			}
		case dot:
			// A dot-named FIFO, socket or device is skipped like a
			// dot-folder: only regular dot-files are part of a snapshot.
		default:
			// Never opened: a FIFO would block, a device could be endless.
			return &FileError{Path: p, Err: fmt.Errorf("%w: %s", ErrNotRegular, kind(t))}
		}
	}
	return nil
}

// list opens directory rel and returns it, for the caller to close, with
// its entries sorted by name.
func (r *reader) list(rel string) (_ *os.File, _ []fs.DirEntry, err error) {
	f, err := r.root.OpenFile(rel, dirOpenFlags, 0)
	if err != nil {
		return nil, nil, r.openErr(rel, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, r.openErr(rel, err)
	}
	if err := r.checkSame(rel, fi); err != nil {
		return nil, nil, err
	}
	var all []fs.DirEntry
	for {
		batch, err := f.ReadDir(readDirBatch)
		r.entries += len(batch)
		if r.entries > r.lim.entries {
			return nil, nil, &FileError{Path: rel, Err: fmt.Errorf("%w: more than %d", ErrTooManyEntries, r.lim.entries)}
		}
		all = append(all, batch...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, r.openErr(rel, err)
		}
	}
	slices.SortFunc(all, func(a, b fs.DirEntry) int { return cmp.Compare(a.Name(), b.Name()) })
	return f, all, nil
}

// addCached adds regular file p, entry name of the open directory dir,
// from the previous read's cache, and reports whether it could: the cache
// must vouch for the file's current stat, taken without following a
// symlink, which must still be a regular file's. Limits are checked as
// addFile checks them; when one is exceeded it reports false, and addFile
// reads the file and returns the error a full read returns.
func (r *reader) addCached(dir *os.File, name, p string) bool {
	if r.prev == nil || len(r.files) >= r.lim.files {
		return false
	}
	if _, ok := r.prev.files[p]; !ok {
		return false // new: no stat to spare
	}
	st, ok := statAt(dir, name)
	if !ok {
		return false
	}
	// Only regular files are kept, and the mode is part of the stat, so a
	// symlink, FIFO or directory swapped in since the listing never
	// matches.
	f, ok := r.prev.reuse(p, st)
	if !ok {
		return false
	}
	data := f.data
	size := int64(len(data))
	if size > r.lim.fileBytes || r.total+size > r.lim.totalBytes {
		return false
	}
	r.total += size
	r.byKey[st.key()] = data
	// Carried over as is: a file trusted once stays trusted while its
	// stat does not change.
	r.next.files[p] = f
	r.next.reused++
	r.files = append(r.files, sources.File{Path: p, Data: data})
	return true
}

func (r *reader) addFile(p string) error {
	if len(r.files) >= r.lim.files {
		return &FileError{Path: p, Err: fmt.Errorf("%w: more than %d", ErrTooManyFiles, r.lim.files)}
	}
	f, err := r.root.OpenFile(p, fileOpenFlags, 0)
	if err != nil {
		return r.openErr(p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return &FileError{Path: p, Err: cause(err)}
	}
	if !fi.Mode().IsRegular() {
		// Listed as a regular file, but something else by now.
		return &FileError{Path: p, Err: fmt.Errorf("%w: %s", errVanished, kind(fi.Mode()))}
	}
	if err := r.checkSame(p, fi); err != nil {
		return err
	}
	// Sizes are checked before reading.
	size := fi.Size()
	if size > r.lim.fileBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrFileTooLarge, size, r.lim.fileBytes)}
	}
	if r.total+size > r.lim.totalBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: over %d bytes", ErrTreeTooLarge, r.lim.totalBytes)}
	}
	// One allocation of the announced size, plus a byte to notice that
	// the file grew since the stat; the rest of a grown file is read
	// through a limit.
	data := make([]byte, size+1)
	n, err := io.ReadFull(f, data)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return &FileError{Path: p, Err: cause(err)}
	}
	data = data[:n]
	if int64(n) == size+1 {
		rest, err := io.ReadAll(io.LimitReader(f, r.lim.fileBytes+1-int64(n)))
		if err != nil {
			return &FileError{Path: p, Err: cause(err)}
		}
		data = append(data, rest...)
	}
	if int64(len(data)) > r.lim.fileBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: over %d bytes", ErrFileTooLarge, r.lim.fileBytes)}
	}
	r.total += int64(len(data))
	if r.total > r.lim.totalBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: over %d bytes", ErrTreeTooLarge, r.lim.totalBytes)}
	}
	if k, ok := keyOf(fi); ok {
		r.byKey[k] = data
	}
	// The stat was taken before reading, so a change made while reading
	// shows as a changed stat next time.
	if st, ok := statOf(fi); ok && r.next != nil {
		r.next.keep(p, st, data, r.start)
	}
	r.files = append(r.files, sources.File{Path: p, Data: data})
	return nil
}

// addSymlink adds symlink p as a copy of the file it points at, if that
// file is one the walk read directly: inside the root and not in a
// dot-folder (so a link cannot smuggle .git/config into a snapshot). The
// target is resolved through the os.Root and only stat'ed, never opened.
// A dot-named symlink that does not qualify is skipped like a dot-folder;
// this also covers editor lock files such as Emacs's dangling ".#name".
func (r *reader) addSymlink(p string) error {
	dot := strings.HasPrefix(path.Base(p), ".")
	fail := func(err error) error {
		if dot {
			return nil
		}
		return &FileError{Path: p, Err: err}
	}
	fi, err := r.root.Stat(p)
	if err != nil {
		if _, lerr := r.root.Lstat(p); errors.Is(lerr, fs.ErrNotExist) {
			return &FileError{Path: p, Err: fmt.Errorf("%w: %w", errVanished, cause(lerr))}
		}
		return fail(fmt.Errorf("%w: %w", ErrSymlink, cause(err)))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("%w: target is a %s", ErrSymlink, kind(fi.Mode())))
	}
	k, ok := keyOf(fi)
	if !ok {
		return fail(fmt.Errorf("%w: symlinks are not followed on this platform", ErrSymlink))
	}
	data, ok := r.byKey[k]
	if !ok {
		return fail(fmt.Errorf("%w: target is not a file of the snapshot", ErrSymlink))
	}
	if len(r.files) >= r.lim.files {
		return &FileError{Path: p, Err: fmt.Errorf("%w: more than %d", ErrTooManyFiles, r.lim.files)}
	}
	r.total += int64(len(data))
	if r.total > r.lim.totalBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: over %d bytes", ErrTreeTooLarge, r.lim.totalBytes)}
	}
	r.files = append(r.files, sources.File{Path: p, Data: data})
	return nil
}

// checkSame makes sure the opened file (fi) is what p names right now and
// not a symlink it was swapped for after listing: os.Root follows in-root
// symlinks on open, which would let a race read a dot-folder's file (or
// list a dot-folder) under another name.
func (r *reader) checkSame(p string, fi fs.FileInfo) error {
	li, err := r.root.Lstat(p)
	if err != nil {
		return r.openErr(p, err)
	}
	if !os.SameFile(fi, li) {
		return &FileError{Path: p, Err: fmt.Errorf("%w: replaced while reading", errVanished)}
	}
	return nil
}

// openErr classifies an error opening or listing p: the root's own errors
// are ErrRoot; an entry that disappeared after it was listed is a race
// (errVanished); anything else names p.
func (r *reader) openErr(p string, err error) error {
	if p == "." {
		return fmt.Errorf("%w: %w", ErrRoot, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return &FileError{Path: p, Err: fmt.Errorf("%w: %w", errVanished, cause(err))}
	}
	return &FileError{Path: p, Err: cause(err)}
}

// cause drops the *fs.PathError wrapper, whose path (relative to the root,
// or absolute) would repeat the FileError's.
func cause(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err
	}
	return err
}

// kind names a non-regular file type for error messages.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "irregular file"
	}
}

// revision is "sha256:" and the hex SHA-256 of, for each file in order,
// its path, a NUL byte, its length as a big-endian uint64 and its
// content. The NUL ends the path (paths cannot contain one) and the
// length ends the content, so two different trees never hash the same
// byte sequence.
func revision(files []sources.File) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range files {
		io.WriteString(h, f.Path)
		h.Write([]byte{0})
		binary.BigEndian.PutUint64(n[:], uint64(len(f.Data)))
		h.Write(n[:])
		h.Write(f.Data)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
