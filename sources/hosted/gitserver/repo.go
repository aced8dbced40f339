package gitserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// objectCacheBytes sizes the decoded-object cache of one request's
// storage; it lives as long as the request.
const objectCacheBytes = 16 * cache.MiByte

// largeObjectBytes is the size above which go-git streams an object
// instead of holding it in memory.
const largeObjectBytes = 4 << 20

// Init creates an empty bare repository in dir whose HEAD names branch
// (a short name, "main"), unless dir already holds a repository; then it
// does nothing. The parent of dir must exist.
func Init(dir, branch string) error {
	ref := plumbing.NewBranchReferenceName(branch)
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("gitserver: branch %q is not a valid branch name", branch)
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gitserver: %w", err)
	}
	// Build it beside its final place and rename it there, so that a
	// crash leaves no half-made repository behind.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".init-"+filepath.Base(dir)+"-")
	if err != nil {
		return fmt.Errorf("gitserver: init %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	st := open(tmp)
	if _, err := gogit.InitWithOptions(st, nil, gogit.InitOptions{DefaultBranch: ref}); err != nil {
		return fmt.Errorf("gitserver: init %s: %w", dir, err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("gitserver: init %s: %w", dir, err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		return fmt.Errorf("gitserver: init %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(filepath.Join(dir, "HEAD")); serr == nil {
			return nil // another Init won the race
		}
		return fmt.Errorf("gitserver: init %s: %w", dir, err)
	}
	return nil
}

// open opens the repository in dir for one request.
func open(dir string) *filesystem.Storage {
	// BoundOS keeps every path go-git touches inside dir, symlinks
	// included (CVE-2023-49569).
	fs := osfs.New(dir, osfs.WithBoundOS())
	return filesystem.NewStorageWithOptions(fs, cache.NewObjectLRU(objectCacheBytes), filesystem.Options{
		LargeObjectThreshold: largeObjectBytes,
	})
}

// Open opens the repository in dir for reading, as a request does; the
// caller closes it. The hosted source reads its branch with it.
func Open(dir string) *filesystem.Storage { return open(dir) }

// advertised are a repository's refs as they are advertised: HEAD first
// when it resolves, then refs/heads and refs/tags sorted, each annotated
// tag followed by its peeled value.
type advertised struct {
	head    *plumbing.Hash
	headRef plumbing.ReferenceName // HEAD's target, when it resolves
	refs    []advRef
}

type advRef struct {
	name string
	hash plumbing.Hash
}

// readRefs reads the refs to advertise from st.
func readRefs(st *filesystem.Storage) (*advertised, error) {
	iter, err := st.IterReferences()
	if err != nil {
		return nil, err
	}
	ad := &advertised{}
	err = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() != plumbing.HashReference || !servedRef(r.Name()) {
			return nil
		}
		ad.refs = append(ad.refs, advRef{name: r.Name().String(), hash: r.Hash()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ad.refs, func(a, b advRef) int { return strings.Compare(a.name, b.name) })
	var out []advRef
	for _, r := range ad.refs {
		out = append(out, r)
		if !strings.HasPrefix(r.name, "refs/tags/") {
			continue
		}
		if tag, err := st.EncodedObject(plumbing.TagObject, r.hash); err == nil {
			if peeled, err := peel(st, tag.Hash()); err == nil {
				out = append(out, advRef{name: r.name + "^{}", hash: peeled})
			}
		}
	}
	ad.refs = out
	if head, err := st.Reference(plumbing.HEAD); err == nil && head.Type() == plumbing.SymbolicReference {
		if target, err := st.Reference(head.Target()); err == nil && target.Type() == plumbing.HashReference {
			h := target.Hash()
			ad.head, ad.headRef = &h, head.Target()
		}
	}
	return ad, nil
}

// servedRef reports the refs a client sees and may update.
func servedRef(n plumbing.ReferenceName) bool {
	return (n.IsBranch() || n.IsTag()) && n.Validate() == nil
}

// tips are the hashes a client may want: every advertised value.
func (ad *advertised) tips() map[plumbing.Hash]bool {
	m := make(map[plumbing.Hash]bool, len(ad.refs)+1)
	for _, r := range ad.refs {
		m[r.hash] = true
	}
	if ad.head != nil {
		m[*ad.head] = true
	}
	return m
}

// setRef points name at h, or removes it when h is zero. The file is
// written whole and renamed into place: a reader or a crash sees the old
// value or the new one. The caller holds the repository's push lock and
// has compared the old value.
func setRef(dir string, st *filesystem.Storage, name plumbing.ReferenceName, h plumbing.Hash) error {
	if !servedRef(name) {
		return ErrRefName
	}
	if h.IsZero() {
		// RemoveReference also drops the ref from packed-refs, should a
		// repository copied in from elsewhere have one.
		return st.RemoveReference(name)
	}
	path := filepath.Join(dir, filepath.FromSlash(name.String()))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// The temporary file is made in the repository's top directory, not
	// beside the ref: a reader listing refs/heads (the advertisement of a
	// concurrent push) would otherwise meet it empty and fail with "ref
	// file is empty". Same filesystem, so the rename is still atomic.
	f, err := os.CreateTemp(dir, ".ref-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.WriteString(h.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// refValue is name's value in st, zero when it does not exist.
func refValue(st *filesystem.Storage, name plumbing.ReferenceName) (plumbing.Hash, error) {
	r, err := st.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if r.Type() != plumbing.HashReference {
		return plumbing.ZeroHash, ErrRefName
	}
	return r.Hash(), nil
}
