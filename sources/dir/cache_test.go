//go:build linux

package dir

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiln.dev/kiln/sources"
)

// cacheBase is the tree every incremental-read case starts from.
var cacheBase = map[string]string{
	"a.yaml":          "aaaa\n",
	"b.yaml":          "bbbb\n",
	"sub/c.yaml":      "cccc\n",
	"sub/deep/d.yaml": "dddd\n",
	".git/HEAD":       "ref: main\n",
}

// trustAll marks every file of c as read long after its last change, as
// in a tree edited seconds apart, so that reuse rests on the stat alone
// and not on the racy-window rule.
func trustAll(c *cache) {
	for p, f := range c.files {
		f.trusted = true
		c.files[p] = f
	}
}

// waitClockTick returns once a file changed now gets a ctime later than
// every file under root has: ctime comes from a coarse clock, and a case
// that must be seen by its stat alone must not change a file in the tick
// its first read saw.
func waitClockTick(t *testing.T, root string) {
	t.Helper()
	var latest int64
	err := filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := statOf(fi); ok {
			latest = max(latest, st.ctime)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(t.TempDir(), "probe")
	deadline := time.Now().Add(waitTimeout)
	for i := 0; ; i++ {
		if err := os.WriteFile(probe, []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(probe)
		if err != nil {
			t.Fatal(err)
		}
		if st, _ := statOf(fi); st.ctime > latest {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the filesystem's ctime clock did not advance")
		}
		time.Sleep(time.Millisecond) // polling a clock; there is no event to wait on
	}
}

func readForTest(t *testing.T, root string, lim limits, prev *cache) ([]sources.File, *cache, error) {
	t.Helper()
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return readTreeCached(t.Context(), r, lim, nil, prev)
}

func TestReadTreeCached_equalsFullRead(t *testing.T) {
	tests := []struct {
		name   string
		lim    limits // zero: the real ones
		change func(t *testing.T, root string)
		// wantReused is how many files the incremental read must take
		// from the cache (the regular files it did not need to read).
		wantReused int
	}{
		{
			name:       "nothing changed",
			change:     func(t *testing.T, root string) {},
			wantReused: 4,
		},
		{
			name: "content changed, same size, mtime restored",
			change: func(t *testing.T, root string) {
				p := filepath.Join(root, "sub", "c.yaml")
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				writeFiles(t, root, map[string]string{"sub/c.yaml": "CCCC\n"})
				if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
					t.Fatal(err)
				}
			},
			wantReused: 3,
		},
		{
			name:       "chmod only",
			change:     func(t *testing.T, root string) { chmod(t, filepath.Join(root, "a.yaml"), 0o600) },
			wantReused: 3, // re-read, same bytes
		},
		{
			name: "rename",
			change: func(t *testing.T, root string) {
				rename(t, filepath.Join(root, "b.yaml"), filepath.Join(root, "z.yaml"))
			},
			wantReused: 3,
		},
		{
			name: "two files of the same size swapped",
			change: func(t *testing.T, root string) {
				rename(t, filepath.Join(root, "a.yaml"), filepath.Join(root, "tmp"))
				rename(t, filepath.Join(root, "b.yaml"), filepath.Join(root, "a.yaml"))
				rename(t, filepath.Join(root, "tmp"), filepath.Join(root, "b.yaml"))
			},
			wantReused: 2,
		},
		{
			name:       "delete",
			change:     func(t *testing.T, root string) { remove(t, filepath.Join(root, "sub", "c.yaml")) },
			wantReused: 3,
		},
		{
			name: "new directory with files",
			change: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"new/x.yaml": "x\n", "new/y/z.yaml": "z\n"})
			},
			wantReused: 4,
		},
		{
			name:       "directory renamed",
			change:     func(t *testing.T, root string) { rename(t, filepath.Join(root, "sub"), filepath.Join(root, "moved")) },
			wantReused: 2,
		},
		{
			name: "file replaced by a symlink",
			change: func(t *testing.T, root string) {
				remove(t, filepath.Join(root, "b.yaml"))
				symlink(t, "sub/c.yaml", filepath.Join(root, "b.yaml"))
			},
			wantReused: 3, // b.yaml is now a copy of the reused c.yaml
		},
		{
			name: "file replaced by a symlink out of the root",
			change: func(t *testing.T, root string) {
				remove(t, filepath.Join(root, "b.yaml"))
				symlink(t, "/etc/passwd", filepath.Join(root, "b.yaml"))
			},
		},
		{
			name: "file replaced by a FIFO",
			change: func(t *testing.T, root string) {
				remove(t, filepath.Join(root, "a.yaml"))
				mkfifo(t, filepath.Join(root, "a.yaml"))
			},
		},
		{
			name: "file replaced by a directory",
			change: func(t *testing.T, root string) {
				remove(t, filepath.Join(root, "a.yaml"))
				writeFiles(t, root, map[string]string{"a.yaml/inner.yaml": "i\n"})
			},
			wantReused: 3,
		},
		{
			name:   "file grown over the size limit",
			lim:    limits{fileBytes: 8, totalBytes: 100, files: 10, entries: 20, depth: 5},
			change: func(t *testing.T, root string) { writeFiles(t, root, map[string]string{"sub/c.yaml": "too large\n"}) },
		},
		{
			name:   "new file over the total limit",
			lim:    limits{fileBytes: 8, totalBytes: 22, files: 10, entries: 20, depth: 5},
			change: func(t *testing.T, root string) { writeFiles(t, root, map[string]string{"0.yaml": "000\n"}) },
		},
		{
			name:   "new file over the file count",
			lim:    limits{fileBytes: 8, totalBytes: 100, files: 4, entries: 20, depth: 5},
			change: func(t *testing.T, root string) { writeFiles(t, root, map[string]string{"0.yaml": "0\n"}) },
		},
		{
			name: "new dot-folder",
			change: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"sub/.cache/x.yaml": "x\n", ".env": "e\n"})
			},
			wantReused: 4,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, cacheBase)
			lim := tc.lim
			if lim == (limits{}) {
				lim = defaultLimits()
			}
			first, c, err := readForTest(t, root, lim, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(first) != 4 || c.reused != 0 {
				t.Fatalf("first read: %d files, %d reused; want 4 and 0", len(first), c.reused)
			}
			trustAll(c)
			waitClockTick(t, root)
			tc.change(t, root)

			got, next, gotErr := readForTest(t, root, lim, c)
			want, _, wantErr := readForTest(t, root, lim, nil)
			if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
				t.Fatalf("incremental read error %v, full read error %v", gotErr, wantErr)
			}
			if gotErr != nil {
				return
			}
			if !slices.EqualFunc(got, want, func(a, b sources.File) bool {
				return a.Path == b.Path && string(a.Data) == string(b.Data)
			}) {
				t.Errorf("incremental read %q, full read %q", fileMap(&sources.Snapshot{Files: got}), fileMap(&sources.Snapshot{Files: want}))
			}
			if revision(got) != revision(want) {
				t.Errorf("revision %s, full read's %s", revision(got), revision(want))
			}
			if next.reused != tc.wantReused {
				t.Errorf("reused %d files, want %d", next.reused, tc.wantReused)
			}
		})
	}
}

// TestReadTreeCached_racyChange shows that a change in the same clock tick
// as the read before it, which leaves the stat as it was, is still read:
// the file changed within racyWindow of that read, so its stat is not
// trusted.
func TestReadTreeCached_racyChange(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, cacheBase)
	lim := defaultLimits()
	_, c, err := readForTest(t, root, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "a.yaml")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{"a.yaml": "AAAA\n"})
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	got, next, err := readForTest(t, root, lim, c)
	if err != nil {
		t.Fatal(err)
	}
	if m := fileMap(&sources.Snapshot{Files: got}); m["a.yaml"] != "AAAA\n" {
		t.Errorf("a.yaml = %q, want the new content", m["a.yaml"])
	}
	if next.reused != 0 {
		t.Errorf("reused %d files changed moments ago, want 0", next.reused)
	}
}

func TestCache_reuse_dirty(t *testing.T) {
	st := fileStat{mode: syscall.S_IFREG | 0o644, size: 1, ino: 7}
	tests := []struct {
		name  string
		dirty []string
		want  bool
	}{
		{"clean", nil, true},
		{"other path", []string{"a/b.yam", "a/bc", "b"}, true},
		{"the file", []string{"a/b/c.yaml"}, false},
		{"its directory", []string{"a/b"}, false},
		{"an ancestor", []string{"a"}, false},
		{"the root", []string{"."}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache()
			c.keep("a/b/c.yaml", st, []byte("x"), time.Now().Add(2*racyWindow))
			for _, d := range tc.dirty {
				c.markDirty(d)
			}
			if _, ok := c.reuse("a/b/c.yaml", st); ok != tc.want {
				t.Errorf("reuse = %v, want %v", ok, tc.want)
			}
			other := st
			other.ctime++
			if _, ok := c.reuse("a/b/c.yaml", other); ok {
				t.Error("reused under another ctime")
			}
		})
	}
}

// TestSource_Run_sameSizeChange is the incremental read under Run: a
// same-size change with the mtime put back is still sent.
func TestSource_Run_sameSizeChange(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "v: 1\n", "b.yaml": "b\n"})
	h := start(t, root, nil, nil)
	h.nextSnapshot()
	p := filepath.Join(root, "a.yaml")
	for i := 2; i <= 5; i++ {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		content := fmt.Sprintf("v: %d\n", i)
		writeFiles(t, root, map[string]string{"a.yaml": content})
		if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		res, _ := h.waitFor("a.yaml "+content, hasFile("a.yaml", content))
		if want := wantRevision(map[string]string{"a.yaml": content, "b.yaml": "b\n"}); res.Snapshot.Revision != want {
			t.Errorf("Revision = %s, want %s", res.Snapshot.Revision, want)
		}
	}
}

// TestSource_Run_checkoutBurst writes 200 files into 10 new directories as
// fast as a loop can, as `git checkout` of another branch does, and wants
// one snapshot with all of them: never a partial tree followed by the
// rest.
func TestSource_Run_checkoutBurst(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"keep.yaml": "k\n"})
	h := start(t, root, nil, nil)
	h.nextSnapshot()
	h.settle()

	want := map[string]string{"keep.yaml": "k\n"}
	t0 := time.Now()
	var maxGap time.Duration
	last := t0
	for i := range 200 {
		p := fmt.Sprintf("app%d/f%03d.yaml", i%10, i)
		want[p] = strings.Repeat(fmt.Sprintf("line %d\n", i), 10)
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(want[p]), 0o644); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		maxGap = max(maxGap, now.Sub(last))
		last = now
	}
	if maxGap >= DefaultDebounce {
		// The machine stalled the writer for longer than the debounce:
		// to any watcher that is two bursts, and a split is allowed.
		// The tree must still arrive whole.
		t.Logf("the writer paused %v, more than the debounce; not a burst", maxGap)
		h.waitFor("all files", func(res sources.Result) bool {
			return res.Snapshot != nil && res.Snapshot.Revision == wantRevision(want)
		})
		return
	}
	res := h.next()
	if res.Err != nil {
		t.Fatalf("got %v, want a snapshot", res.Err)
	}
	if got := fileMap(res.Snapshot); len(got) != len(want) {
		t.Fatalf("first snapshot after the burst has %d of %d files (writer's longest pause %v)", len(got), len(want), maxGap)
	}
	if res.Snapshot.Revision != wantRevision(want) {
		t.Errorf("Revision = %s, want %s", res.Snapshot.Revision, wantRevision(want))
	}
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}
