package git

import (
	"cmp"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"kiln.dev/kiln/sources"
)

const (
	// maxEntries bounds the tree entries one snapshot visits (files,
	// directories, symlinks, submodules; dot-folders counted but not
	// entered), as in sources/dir: sources.MaxFiles alone would not bound
	// a tree of empty directories or submodules.
	maxEntries = 2 * sources.MaxFiles
	// maxDepth bounds how deep trees nest below the subpath.
	maxDepth = 256
	// maxObjectBytes bounds a commit, tag or tree object, which is
	// decoded whole in memory.
	maxObjectBytes = sources.MaxFileBytes
	// maxSymlinkHops bounds a chain of symlinks, as Linux's ELOOP does.
	maxSymlinkHops = 40
	// maxLinkBytes bounds a symlink target, as PATH_MAX does.
	maxLinkBytes = 4096
	// maxMessageBytes is how much of a commit message a snapshot keeps.
	maxMessageBytes = 2 << 10
)

// snapshot reads the files of commit t.commit under the subpath.
func (s *Source) snapshot(t target) (*sources.Snapshot, error) {
	return readCommit(s.st, s.cfg.Name, t.revision(), s.subpath, t.commit)
}

// SnapshotCommit reads the snapshot of commit from st, by the rules and
// limits a git source reads a fetched commit with (see the package doc):
// the regular files under subpath, which must be relative and free of
// "..". The hosted source (sources/hosted) uses it on pushed commits. A
// tree that breaks a rule is a *FileError, as from a git source.
func SnapshotCommit(st *filesystem.Storage, source, revision, subpath string, commit plumbing.Hash) (*sources.Snapshot, error) {
	sub, err := cleanSubpath(subpath)
	if err != nil {
		return nil, err
	}
	return readCommit(st, source, revision, sub, commit)
}

// readCommit reads the files of commit under subpath, already cleaned.
func readCommit(st *filesystem.Storage, source, revision, subpath string, commit plumbing.Hash) (*sources.Snapshot, error) {
	if err := checkObjectSize(st, commit); err != nil {
		return nil, err
	}
	c, err := object.GetCommit(st, commit)
	if err != nil {
		return nil, fmt.Errorf("%w: commit %s: %w", ErrInvalidTree, commit, err)
	}
	r := &treeReader{st: st, trees: map[plumbing.Hash]*object.Tree{}, names: map[*object.Tree]map[string]int{}}
	root, err := r.tree(c.TreeHash)
	if err != nil {
		return nil, err
	}
	repoRoot := root
	if subpath != "" {
		for _, part := range strings.Split(subpath, "/") {
			e := r.entry(root, part)
			if e == nil || e.Mode != filemode.Dir {
				return nil, fmt.Errorf("%w: %q", ErrSubpathNotFound, subpath)
			}
			if root, err = r.tree(e.Hash); err != nil {
				return nil, err
			}
		}
	}
	r.root = root
	if err := r.walk(root, "", 0); err != nil {
		return nil, err
	}
	files, err := r.read()
	if err != nil {
		return nil, err
	}
	var outside []sources.File
	if subpath != "" {
		if outside, err = r.context(repoRoot, subpath); err != nil {
			return nil, err
		}
	}
	msg := c.Message
	if len(msg) > maxMessageBytes {
		msg = strings.ToValidUTF8(msg[:maxMessageBytes], "")
	}
	return &sources.Snapshot{
		Source:   source,
		Revision: revision,
		Files:    files,
		Subpath:  subpath,
		Context:  outside,
		Commit: &sources.Commit{
			Hash:    commit.String(),
			Message: msg,
			Author:  c.Author.Name + " <" + c.Author.Email + ">",
			Time:    c.Author.When,
		},
		FetchedAt: time.Now(),
	}, nil
}

// treeReader walks the trees of one commit below the subpath (root) and
// collects the blobs to read, checking every limit on blob sizes before
// any blob is read.
type treeReader struct {
	st      *filesystem.Storage
	root    *object.Tree
	trees   map[plumbing.Hash]*object.Tree
	names   map[*object.Tree]map[string]int // entry index by name, built on first lookup
	blobs   []blob
	entries int
	total   int64
}

// blob is one file of the snapshot: the path it appears at and the blob
// it reads (a symlink's path with its target's blob).
type blob struct {
	path string
	hash plumbing.Hash
	size int64
}

func (r *treeReader) tree(h plumbing.Hash) (*object.Tree, error) {
	if t, ok := r.trees[h]; ok {
		return t, nil
	}
	n, err := r.st.EncodedObjectSize(h)
	if err != nil {
		return nil, fmt.Errorf("%w: tree %s: %w", ErrInvalidTree, h, err)
	}
	if n > maxObjectBytes {
		return nil, fmt.Errorf("%w: tree %s is %d bytes, over the %d-byte limit", ErrInvalidTree, h, n, maxObjectBytes)
	}
	t, err := object.GetTree(r.st, h)
	if err != nil {
		return nil, fmt.Errorf("%w: tree %s: %w", ErrInvalidTree, h, err)
	}
	r.trees[h] = t
	return t, nil
}

// entry is t's entry called name, or nil. Tree.FindEntry is not used: it
// would load subtrees without the size check of tree.
func (r *treeReader) entry(t *object.Tree, name string) *object.TreeEntry {
	idx, ok := r.names[t]
	if !ok {
		idx = make(map[string]int, len(t.Entries))
		for i := range t.Entries {
			if _, dup := idx[t.Entries[i].Name]; !dup {
				idx[t.Entries[i].Name] = i
			}
		}
		r.names[t] = idx
	}
	i, ok := idx[name]
	if !ok {
		return nil
	}
	return &t.Entries[i]
}

func (r *treeReader) walk(t *object.Tree, dir string, depth int) error {
	for i := range t.Entries {
		e := &t.Entries[i]
		r.entries++
		if r.entries > maxEntries {
			return &FileError{Path: orRoot(dir), Err: fmt.Errorf("%w: over %d", ErrTooManyEntries, maxEntries)}
		}
		if !validName(e.Name) {
			return &FileError{Path: orRoot(dir), Err: fmt.Errorf("%w: entry name %q", ErrInvalidTree, e.Name)}
		}
		p := path.Join(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			if strings.HasPrefix(e.Name, ".") {
				continue
			}
			if depth+1 > maxDepth {
				return &FileError{Path: p, Err: fmt.Errorf("%w: nested over %d deep", ErrTooManyEntries, maxDepth)}
			}
			sub, err := r.tree(e.Hash)
			if err != nil {
				return &FileError{Path: p, Err: err}
			}
			if err := r.walk(sub, p, depth+1); err != nil {
				return err
			}
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			if err := r.add(p, e.Hash); err != nil {
				return err
			}
		case filemode.Symlink:
			h, err := r.resolve(p, e.Hash)
			if err != nil {
				return err
			}
			if err := r.add(p, h); err != nil {
				return err
			}
		case filemode.Submodule:
			// A gitlink names a commit of another repository; submodules
			// are never followed (CVE-2024-32002).
		default:
			return &FileError{Path: p, Err: fmt.Errorf("%w: mode %o", ErrInvalidTree, uint32(e.Mode))}
		}
	}
	return nil
}

// validName reports whether git would accept name as a tree entry (git
// fsck refuses the rest, and no checkout could write them).
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.EqualFold(name, ".git") &&
		!strings.ContainsAny(name, "/\x00")
}

func orRoot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

// add checks the limits for one more file of the blob's size.
func (r *treeReader) add(p string, h plumbing.Hash) error {
	n, err := r.st.EncodedObjectSize(h)
	if err != nil {
		return &FileError{Path: p, Err: fmt.Errorf("%w: blob %s: %w", ErrInvalidTree, h, err)}
	}
	if n > sources.MaxFileBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: %d bytes, over the %d-byte limit", ErrFileTooLarge, n, sources.MaxFileBytes)}
	}
	if len(r.blobs) >= sources.MaxFiles {
		return &FileError{Path: p, Err: fmt.Errorf("%w: over %d", ErrTooManyFiles, sources.MaxFiles)}
	}
	r.total += n
	if r.total > sources.MaxTotalBytes {
		return &FileError{Path: p, Err: fmt.Errorf("%w: over %d bytes in all", ErrTreeTooLarge, sources.MaxTotalBytes)}
	}
	r.blobs = append(r.blobs, blob{path: p, hash: h, size: n})
	return nil
}

// resolve follows the symlink at p (blob h holds its target) within the
// root, lexically, to the blob of a regular file that is itself part of
// the snapshot: not outside the root and not inside a dot-folder.
func (r *treeReader) resolve(p string, h plumbing.Hash) (plumbing.Hash, error) {
	cur := p
	fail := func(format string, args ...any) error {
		if cur != p {
			// Name the link of the chain that failed.
			format = "via %s, " + format
			args = append([]any{cur}, args...)
		}
		return &FileError{Path: p, Err: fmt.Errorf("%w: "+format, append([]any{ErrSymlink}, args...)...)}
	}
	for range maxSymlinkHops {
		target, err := r.readLink(h)
		if err != nil {
			return plumbing.ZeroHash, &FileError{Path: p, Err: err}
		}
		next, ok := joinLink(cur, target)
		if !ok {
			return plumbing.ZeroHash, fail("target %q is outside the root", target)
		}
		e, err := r.find(next)
		if err != nil {
			return plumbing.ZeroHash, &FileError{Path: p, Err: err}
		}
		switch {
		case e == nil:
			return plumbing.ZeroHash, fail("target %q is not a file of the snapshot", target)
		case e.Mode == filemode.Regular || e.Mode == filemode.Executable || e.Mode == filemode.Deprecated:
			return e.Hash, nil
		case e.Mode == filemode.Symlink:
			cur, h = next, e.Hash
		default:
			return plumbing.ZeroHash, fail("target %q is not a regular file", target)
		}
	}
	return plumbing.ZeroHash, fail("more than %d levels of symlinks", maxSymlinkHops)
}

func (r *treeReader) readLink(h plumbing.Hash) (string, error) {
	n, err := r.st.EncodedObjectSize(h)
	if err != nil {
		return "", fmt.Errorf("%w: blob %s: %w", ErrInvalidTree, h, err)
	}
	if n > maxLinkBytes {
		return "", fmt.Errorf("%w: target is %d bytes, over %d", ErrSymlink, n, maxLinkBytes)
	}
	data, err := r.readBlob(h, n)
	return string(data), err
}

// find looks p up below the root, not entering dot-folders (their files
// are not part of the snapshot); nil means no such entry.
func (r *treeReader) find(p string) (*object.TreeEntry, error) {
	t := r.root
	parts := strings.Split(p, "/")
	for i, part := range parts {
		e := r.entry(t, part)
		if e == nil || i == len(parts)-1 {
			return e, nil
		}
		if e.Mode != filemode.Dir || strings.HasPrefix(part, ".") {
			return nil, nil
		}
		var err error
		if t, err = r.tree(e.Hash); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// joinLink resolves a symlink's target against the directory of the link
// at linkPath, lexically; ok is false when the result is absolute, the
// root itself, or outside the root. Both paths are relative to the root.
func joinLink(linkPath, target string) (string, bool) {
	if target == "" || path.IsAbs(target) || strings.ContainsRune(target, 0) {
		return "", false
	}
	j := path.Join(path.Dir(linkPath), target)
	if j == "." || j == ".." || strings.HasPrefix(j, "../") || path.IsAbs(j) {
		return "", false
	}
	return j, true
}

// read reads the collected blobs, sorted by path.
func (r *treeReader) read() ([]sources.File, error) {
	slices.SortFunc(r.blobs, func(a, b blob) int { return cmp.Compare(a.path, b.path) })
	files := make([]sources.File, len(r.blobs))
	for i, b := range r.blobs {
		if i > 0 && r.blobs[i-1].path == b.path {
			return nil, &FileError{Path: b.path, Err: fmt.Errorf("%w: duplicate entry", ErrInvalidTree)}
		}
		data, err := r.readBlob(b.hash, b.size)
		if err != nil {
			return nil, &FileError{Path: b.path, Err: err}
		}
		files[i] = sources.File{Path: b.path, Data: data}
	}
	return files, nil
}

// readBlob reads a blob whose size is known to be n.
func (r *treeReader) readBlob(h plumbing.Hash, n int64) (_ []byte, err error) {
	obj, err := r.st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, fmt.Errorf("%w: blob %s: %w", ErrInvalidTree, h, err)
	}
	rc, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("%w: blob %s: %w", ErrInvalidTree, h, err)
	}
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	data, err := io.ReadAll(io.LimitReader(rc, n+1))
	if err != nil {
		return nil, fmt.Errorf("%w: blob %s: %w", ErrInvalidTree, h, err)
	}
	if int64(len(data)) != n {
		return nil, fmt.Errorf("%w: blob %s is %d bytes, not %d", ErrInvalidTree, h, len(data), n)
	}
	return data, nil
}

// context reads the regular files of the repository outside subpath
// (sources.Snapshot.Context), with paths relative to subpath, until the
// context limits are reached: what is left out cannot be built on, which
// the render reports as a missing reference. Dot-folders, symlinks,
// submodules and entries git would refuse are skipped.
func (r *treeReader) context(repoRoot *object.Tree, subpath string) ([]sources.File, error) {
	var blobs []blob
	var total int64
	entries := 0
	var walk func(t *object.Tree, dir string, depth int) bool
	walk = func(t *object.Tree, dir string, depth int) bool {
		for i := range t.Entries {
			e := &t.Entries[i]
			entries++
			if entries > maxEntries || len(blobs) >= sources.MaxContextFiles {
				return false
			}
			if !validName(e.Name) || strings.HasPrefix(e.Name, ".") {
				continue
			}
			p := path.Join(dir, e.Name)
			switch e.Mode {
			case filemode.Dir:
				if p == subpath || depth+1 > maxDepth {
					continue
				}
				sub, err := r.tree(e.Hash)
				if err != nil {
					continue
				}
				if !walk(sub, p, depth+1) {
					return false
				}
			case filemode.Regular, filemode.Executable, filemode.Deprecated:
				n, err := r.st.EncodedObjectSize(e.Hash)
				if err != nil || n > sources.MaxFileBytes {
					continue
				}
				if total+n > sources.MaxContextBytes {
					return false
				}
				// The shortest path from the root: "../staging/x.yaml"
				// beside overlays/prod, as a reference would name it.
				rel, err := filepath.Rel(subpath, p)
				if err != nil {
					continue
				}
				total += n
				blobs = append(blobs, blob{path: filepath.ToSlash(rel), hash: e.Hash, size: n})
			}
		}
		return true
	}
	walk(repoRoot, "", 0)
	slices.SortFunc(blobs, func(a, b blob) int { return cmp.Compare(a.path, b.path) })
	files := make([]sources.File, 0, len(blobs))
	for _, b := range blobs {
		data, err := r.readBlob(b.hash, b.size)
		if err != nil {
			return nil, &FileError{Path: b.path, Err: err}
		}
		files = append(files, sources.File{Path: b.path, Data: data})
	}
	return files, nil
}
