//go:build unix

package dir

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/sources"
)

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hostileCases are trees that must yield an error naming a path and no
// snapshot (RELIABILITY.md (b) 1, 3, 4, 8, 12).
var hostileCases = []struct {
	name     string
	setup    func(t *testing.T, root string)
	wantPath string
	wantErr  error
}{
	{
		name:     "symlink to /etc/passwd",
		setup:    func(t *testing.T, root string) { symlink(t, "/etc/passwd", filepath.Join(root, "leak.yaml")) },
		wantPath: "leak.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name: "relative symlink out of the root",
		setup: func(t *testing.T, root string) {
			writeFiles(t, filepath.Dir(root), map[string]string{"secret.yaml": "token: x\n"})
			symlink(t, "../../secret.yaml", filepath.Join(root, "sub", "leak.yaml"))
		},
		wantPath: "sub/leak.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name: "absolute symlink into the root",
		setup: func(t *testing.T, root string) {
			symlink(t, filepath.Join(root, "a.yaml"), filepath.Join(root, "abs.yaml"))
		},
		wantPath: "abs.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name: "symlink into a dot-folder",
		setup: func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{".git/config": "url = https://token@example.com\n"})
			symlink(t, ".git/config", filepath.Join(root, "config.yaml"))
		},
		wantPath: "config.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name:     "symlink to a directory",
		setup:    func(t *testing.T, root string) { symlink(t, "sub", filepath.Join(root, "loop")) },
		wantPath: "loop",
		wantErr:  ErrSymlink,
	},
	{
		name:     "symlink to itself",
		setup:    func(t *testing.T, root string) { symlink(t, "self.yaml", filepath.Join(root, "self.yaml")) },
		wantPath: "self.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name:     "dangling symlink",
		setup:    func(t *testing.T, root string) { symlink(t, "nothing.yaml", filepath.Join(root, "gone.yaml")) },
		wantPath: "gone.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name:     "symlink to /dev/zero",
		setup:    func(t *testing.T, root string) { symlink(t, "/dev/zero", filepath.Join(root, "zero.yaml")) },
		wantPath: "zero.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name: "symlink to a FIFO in the root",
		setup: func(t *testing.T, root string) {
			// In a dot-folder, so that the walk does not meet the FIFO
			// itself first.
			if err := os.Mkdir(filepath.Join(root, ".hidden"), 0o755); err != nil {
				t.Fatal(err)
			}
			mkfifo(t, filepath.Join(root, ".hidden", "pipe"))
			symlink(t, ".hidden/pipe", filepath.Join(root, "p.yaml"))
		},
		wantPath: "p.yaml",
		wantErr:  ErrSymlink,
	},
	{
		name:     "FIFO named x.yaml",
		setup:    func(t *testing.T, root string) { mkfifo(t, filepath.Join(root, "x.yaml")) },
		wantPath: "x.yaml",
		wantErr:  ErrNotRegular,
	},
	{
		name: "socket",
		setup: func(t *testing.T, root string) {
			// Socket paths are short (108 bytes): listen from inside root.
			t.Chdir(root)
			l, err := net.Listen("unix", "s.yaml")
			testenv.Require(t, "a unix socket in the test dir", err == nil)
			t.Cleanup(func() { l.Close() })
		},
		wantPath: "s.yaml",
		wantErr:  ErrNotRegular,
	},
	{
		name: "character device",
		setup: func(t *testing.T, root string) {
			// Like /dev/zero (1, 5); needs CAP_MKNOD.
			err := syscall.Mknod(filepath.Join(root, "sub", "zero.yaml"), syscall.S_IFCHR|0o644, 1<<8|5)
			testenv.Require(t, "CAP_MKNOD to create a device node (run as root)", err == nil)
		},
		wantPath: "sub/zero.yaml",
		wantErr:  ErrNotRegular,
	},
	{
		name: "5 MiB file",
		setup: func(t *testing.T, root string) {
			writeFiles(t, root, map[string]string{"sub/big.yaml": strings.Repeat("x", 5<<20)})
		},
		wantPath: "sub/big.yaml",
		wantErr:  ErrFileTooLarge,
	},
}

func TestSource_Run_hostileTree(t *testing.T) {
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "repo")
			writeFiles(t, root, map[string]string{"a.yaml": "a\n", "sub/b.yaml": "b\n"})
			tc.setup(t, root)

			h := start(t, root, nil, nil)
			res := h.next()
			checkFileError(t, res, tc.wantPath, tc.wantErr)
		})
	}
}

func checkFileError(t *testing.T, res sources.Result, wantPath string, wantErr error) {
	t.Helper()
	if res.Snapshot != nil {
		t.Fatalf("got a snapshot with %q, want an error", paths(res.Snapshot))
	}
	fe, ok := errors.AsType[*FileError](res.Err)
	if !ok {
		t.Fatalf("error %v is not a *FileError", res.Err)
	}
	if fe.Path != wantPath || !errors.Is(res.Err, wantErr) {
		t.Errorf("error %q: path %q, want %q wrapping %v", res.Err, fe.Path, wantPath, wantErr)
	}
	if !strings.HasPrefix(res.Err.Error(), wantPath+": ") {
		t.Errorf("error %q does not start with the path", res.Err)
	}
	if strings.Contains(res.Err.Error(), "root:x:") || strings.Contains(res.Err.Error(), "token") {
		t.Errorf("error %q shows file content", res.Err)
	}
}

func TestSource_Run_symlinkInsideRoot(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"base/app.yaml": "kind: App\n"})
	symlink(t, "base/app.yaml", filepath.Join(root, "link.yaml"))
	symlink(t, "../link.yaml", filepath.Join(root, "base", "chain.yaml")) // link to a link
	h := start(t, root, nil, nil)

	got := fileMap(h.nextSnapshot())
	want := map[string]string{"base/app.yaml": "kind: App\n", "base/chain.yaml": "kind: App\n", "link.yaml": "kind: App\n"}
	if len(got) != len(want) {
		t.Fatalf("files = %q, want %q", sortedKeys(got), sortedKeys(want))
	}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("%s = %q, want %q", p, got[p], c)
		}
	}

	// A change to the target shows through the link.
	writeFiles(t, root, map[string]string{"base/app.yaml": "kind: App2\n"})
	h.waitFor("link.yaml updated", hasFile("link.yaml", "kind: App2\n"))
}

// An error is sent once while it lasts, again when it changes, and the
// fixed tree is sent even if it equals the last snapshot sent.
func TestSource_Run_errorThenRecovery(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "a\n"})
	h := start(t, root, nil, nil)
	good := h.nextSnapshot()

	fifo := filepath.Join(root, "x.yaml")
	mkfifo(t, fifo)
	res, _ := h.waitFor("FIFO error", isErr(ErrNotRegular))
	checkFileError(t, res, "x.yaml", ErrNotRegular)
	h.settle()

	h.src.Trigger()
	if r := h.nextRead(); r.sent || !errors.Is(r.res.Err, ErrNotRegular) {
		t.Fatalf("same error again: sent=%v %s; want unsent", r.sent, describe(r.res))
	}
	h.assertNothingSent()

	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, root, map[string]string{"big.yaml": strings.Repeat("x", sources.MaxFileBytes+1)})
	res, _ = h.waitFor("big file error", isErr(ErrFileTooLarge))
	checkFileError(t, res, "big.yaml", ErrFileTooLarge)

	if err := os.Remove(filepath.Join(root, "big.yaml")); err != nil {
		t.Fatal(err)
	}
	res, _ = h.waitFor("the good tree again", func(res sources.Result) bool { return res.Snapshot != nil })
	if res.Snapshot.Revision != good.Revision {
		t.Errorf("revision %s, want the first one %s", res.Snapshot.Revision, good.Revision)
	}
}

func TestReadTree(t *testing.T) {
	tests := []struct {
		name  string
		lim   limits // zero: the real ones
		setup func(t *testing.T, root string)
		want  map[string]string // nil: expect an error
		// for errors:
		wantPath string
		wantErr  error
	}{
		{
			name: "sorted by full path, dot-files kept, dot-folders skipped",
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{
					"a/b.yaml": "1", "a.yaml": "2", "a-b.yaml": "3", ".env": "4",
					".git/HEAD": "5", "a/.terraform/x": "6",
				})
			},
			want: map[string]string{"a/b.yaml": "1", "a.yaml": "2", "a-b.yaml": "3", ".env": "4"},
		},
		{
			name: "hard link read as a file",
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a.yaml": "a"})
				if err := os.Link(filepath.Join(root, "a.yaml"), filepath.Join(root, "h.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]string{"a.yaml": "a", "h.yaml": "a"},
		},
		{
			name: "dot-named symlinks and specials that do not qualify are skipped",
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a.yaml": "a", "real.yaml": "r"})
				symlink(t, "user@host.1234:1700000000", filepath.Join(root, ".#a.yaml")) // Emacs lock
				symlink(t, "/etc/passwd", filepath.Join(root, ".passwd"))
				symlink(t, "real.yaml", filepath.Join(root, ".kiln.yaml"))
				mkfifo(t, filepath.Join(root, ".pipe"))
			},
			want: map[string]string{"a.yaml": "a", "real.yaml": "r", ".kiln.yaml": "r"},
		},
		{
			name:  "empty tree",
			setup: func(t *testing.T, root string) {},
			want:  map[string]string{},
		},
		{
			name: "file over the size limit",
			lim:  limits{fileBytes: 10, totalBytes: 100, files: 10, entries: 10, depth: 5},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a.yaml": "0123456789", "b.yaml": "0123456789x"})
			},
			wantPath: "b.yaml",
			wantErr:  ErrFileTooLarge,
		},
		{
			name: "a symlink counts toward the total",
			lim:  limits{fileBytes: 10, totalBytes: 20, files: 3, entries: 3, depth: 5},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a.yaml": "0123456789", "b.yaml": "0123456789"})
				symlink(t, "a.yaml", filepath.Join(root, "c.yaml"))
			},
			wantPath: "c.yaml",
			wantErr:  ErrTreeTooLarge, // the link counts as a file of its own
		},
		{
			name: "exactly at the limits",
			lim:  limits{fileBytes: 10, totalBytes: 20, files: 2, entries: 3, depth: 5},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"d/a.yaml": "0123456789", "d/b.yaml": "0123456789"})
			},
			want: map[string]string{"d/a.yaml": "0123456789", "d/b.yaml": "0123456789"},
		},
		{
			name: "tree over the total limit",
			lim:  limits{fileBytes: 10, totalBytes: 25, files: 10, entries: 10, depth: 5},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a.yaml": "0123456789", "b.yaml": "0123456789", "c.yaml": "0123456789"})
			},
			wantPath: "c.yaml",
			wantErr:  ErrTreeTooLarge,
		},
		{
			name: "too many files",
			lim:  limits{fileBytes: 10, totalBytes: 100, files: 3, entries: 10, depth: 5},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"d/1": "", "d/2": "", "d/3": "", "d/4": ""})
			},
			wantPath: "d/4",
			wantErr:  ErrTooManyFiles,
		},
		{
			name: "too many files through symlinks",
			lim:  limits{fileBytes: 10, totalBytes: 100, files: 2, entries: 10, depth: 5},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a": "", "b": ""})
				symlink(t, "a", filepath.Join(root, "l"))
			},
			wantPath: "l",
			wantErr:  ErrTooManyFiles,
		},
		{
			name: "too many entries, in skipped dot-folders",
			lim:  limits{fileBytes: 10, totalBytes: 100, files: 10, entries: 5, depth: 5},
			setup: func(t *testing.T, root string) {
				for i := range 6 {
					if err := os.MkdirAll(filepath.Join(root, "d", fmt.Sprintf(".%d", i)), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantPath: "d",
			wantErr:  ErrTooManyEntries,
		},
		{
			name: "too deep",
			lim:  limits{fileBytes: 10, totalBytes: 100, files: 10, entries: 10, depth: 2},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a/b/ok.yaml": "", "a/b/c/no.yaml": ""})
			},
			wantPath: "a/b/c",
			wantErr:  ErrTooDeep,
		},
		{
			name: "as deep as allowed",
			lim:  limits{fileBytes: 10, totalBytes: 100, files: 10, entries: 10, depth: 2},
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"a/b/ok.yaml": "ok"})
			},
			want: map[string]string{"a/b/ok.yaml": "ok"},
		},
		{
			name: "a file of exactly MaxFileBytes is fine",
			setup: func(t *testing.T, root string) {
				writeFiles(t, root, map[string]string{"f.yaml": strings.Repeat("x", sources.MaxFileBytes)})
			},
			want: map[string]string{"f.yaml": strings.Repeat("x", sources.MaxFileBytes)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			r, err := os.OpenRoot(root)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var dirs []string
			lim := tc.lim
			if lim == (limits{}) {
				lim = defaultLimits()
			}
			files, err := readTree(t.Context(), r, lim, func(rel string) { dirs = append(dirs, rel) })
			if tc.want == nil {
				checkFileError(t, sources.Result{Err: err}, tc.wantPath, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			var order []string
			for _, f := range files {
				got[f.Path] = string(f.Data)
				order = append(order, f.Path)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("files = %q, want %q", sortedKeys(got), sortedKeys(tc.want))
			}
			if !slices.IsSorted(order) {
				t.Errorf("not sorted by path: %q", order)
			}
			if want := wantRevision(tc.want); revision(files) != want {
				t.Errorf("revision = %s, want %s", revision(files), want)
			}
			for _, d := range dirs {
				if strings.Contains("/"+d, "/.") && d != "." {
					t.Errorf("walked into dot-folder %s", d)
				}
			}
		})
	}
}

func TestRevision_distinguishesBoundaries(t *testing.T) {
	// Moving bytes between path and content, or between files, must change
	// the revision.
	trees := [][]sources.File{
		{{Path: "ab", Data: []byte("c")}},
		{{Path: "a", Data: []byte("bc")}},
		{{Path: "a", Data: []byte("b")}, {Path: "c", Data: nil}},
		{{Path: "a", Data: []byte("b\x00c")}},
		{},
	}
	seen := map[string]int{}
	for i, files := range trees {
		rev := revision(files)
		if j, dup := seen[rev]; dup {
			t.Errorf("trees %d and %d share revision %s", j, i, rev)
		}
		seen[rev] = i
	}
	if got := revision(nil); got != "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("empty revision = %s", got)
	}
}

func TestDefaultLimits(t *testing.T) {
	got := defaultLimits()
	want := limits{fileBytes: sources.MaxFileBytes, totalBytes: sources.MaxTotalBytes, files: sources.MaxFiles, entries: 2 * sources.MaxFiles, depth: 64}
	if got != want {
		t.Errorf("defaultLimits() = %+v, want %+v", got, want)
	}
	s, err := New(Config{Name: "x", Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.limits != want {
		t.Errorf("New sets limits %+v, want %+v", s.limits, want)
	}
}
