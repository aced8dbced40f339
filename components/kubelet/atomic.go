package kubelet

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// file is one file of a configMap, secret, downwardAPI or projected
// volume.
type file struct {
	data []byte
	mode os.FileMode
}

// dataLink is the symlink that names the current contents, as in
// Kubernetes's AtomicWriter: a container sees every update of a volume
// whole, never half-written.
const dataLink = "..data"

// writeAtomic makes dir hold exactly files, the way Kubernetes's
// AtomicWriter does: the files go into a new hidden directory
// "..<timestamp>", the symlink "..data" is switched to it with a rename,
// and each top-level name is a symlink through "..data". Nothing is
// written when the contents are unchanged.
func writeAtomic(dir string, files map[string]file) error {
	for p := range files {
		if err := checkVolumePath(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := os.Readlink(filepath.Join(dir, dataLink))
	if old != "" && sameFiles(filepath.Join(dir, old), files) {
		return linkTops(dir, files)
	}
	ts, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := fillDir(ts, files); err != nil {
		// A half-written directory that ..data never named must not stay.
		_ = os.RemoveAll(ts)
		return err
	}
	tmp := filepath.Join(dir, dataLink+"_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		_ = os.RemoveAll(ts)
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		_ = os.RemoveAll(ts)
		return err
	}
	if err := linkTops(dir, files); err != nil {
		return err
	}
	if old != "" && old != filepath.Base(ts) && strings.HasPrefix(old, "..") {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// fillDir writes files under ts with their modes.
func fillDir(ts string, files map[string]file) error {
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for p, f := range files {
		path := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(path, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// checkVolumePath refuses paths that would leave the volume.
func checkVolumePath(p string) error {
	c := filepath.Clean(p)
	if p == "" || filepath.IsAbs(p) || c == "." || c == ".." || strings.HasPrefix(c, "../") || strings.HasPrefix(c, "..") {
		return fmt.Errorf("volume file path %q must be relative and must not start with '..'", p)
	}
	return nil
}

// linkTops makes each top-level name a symlink through ..data and
// removes the names no longer there.
func linkTops(dir string, files map[string]file) error {
	tops := map[string]bool{}
	for p := range files {
		top, _, _ := strings.Cut(filepath.ToSlash(filepath.Clean(p)), "/")
		tops[top] = true
	}
	for top := range tops {
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, top), link); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") || tops[e.Name()] {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// sameFiles reports whether dir holds exactly files, with their modes.
func sameFiles(dir string, files map[string]file) bool {
	seen := 0
	same := true
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, ok := files[rel]
		if !ok {
			same = false
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if info.Mode().Perm() != f.mode.Perm() || !bytes.Equal(b, f.data) {
			same = false
			return fs.SkipAll
		}
		seen++
		return nil
	})
	return err == nil && same && seen == len(files)
}
