package dir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"kiln.dev/kiln/sources"
)

// wantRevision computes the documented revision format independently of
// revision().
func wantRevision(files map[string]string) string {
	var b bytes.Buffer
	for _, p := range sortedKeys(files) {
		b.WriteString(p)
		b.WriteByte(0)
		_ = binary.Write(&b, binary.BigEndian, uint64(len(files[p])))
		b.WriteString(files[p])
	}
	sum := sha256.Sum256(b.Bytes())
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestNew_validation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFiles(t, dir, map[string]string{"f": ""})
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Path: dir}, "name is required"},
		{"no path", Config{Name: "x"}, "path is required"},
		{"missing path", Config{Name: "x", Path: filepath.Join(dir, "nope")}, "no such file"},
		{"path is a file", Config{Name: "x", Path: file}, "not a directory"},
		{"negative debounce", Config{Name: "x", Path: dir, Debounce: -1}, "debounce"},
		{"negative poll interval", Config{Name: "x", Path: dir, PollInterval: -1}, "pollInterval"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		t.Chdir(dir)
		s, err := New(Config{Name: "x", Path: "."})
		if err != nil {
			t.Fatal(err)
		}
		if s.cfg.Debounce != DefaultDebounce || s.cfg.PollInterval != DefaultPollInterval || s.cfg.Logger == nil {
			t.Errorf("defaults not applied: %+v", s.cfg)
		}
		if !filepath.IsAbs(s.cfg.Path) {
			t.Errorf("path %q not made absolute", s.cfg.Path)
		}
	})
}

func TestSource_Run_firstSnapshot(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"b.yaml":            "kind: B\n",
		"a/c.yaml":          "kind: C\n",
		"a.yaml":            "kind: A\n",
		".kiln.yaml":        "dot-files are kept\n",
		"empty.json":        "",
		".git/config":       "[remote] url = https://token@example.com\n",
		"a/.github/ci.yaml": "dot-folders are skipped at any depth\n",
	}
	writeFiles(t, root, files)
	want := map[string]string{}
	for p, c := range files {
		if !strings.HasPrefix(p, ".git/") && !strings.Contains(p, "/.github/") {
			want[p] = c
		}
	}

	h := start(t, root, nil, nil)
	snap := h.nextSnapshot()

	if snap.Source != "test" {
		t.Errorf("Source = %q, want test", snap.Source)
	}
	if got, wantPaths := paths(snap), sortedKeys(want); !slices.Equal(got, wantPaths) {
		t.Errorf("paths = %q, want %q", got, wantPaths)
	}
	for _, f := range snap.Files {
		if string(f.Data) != want[f.Path] {
			t.Errorf("%s = %q, want %q", f.Path, f.Data, want[f.Path])
		}
	}
	if snap.Revision != wantRevision(want) {
		t.Errorf("Revision = %s, want %s", snap.Revision, wantRevision(want))
	}
	if snap.Commit != nil || snap.FetchedAt.IsZero() {
		t.Errorf("Commit = %v, FetchedAt = %v; want nil and set", snap.Commit, snap.FetchedAt)
	}
}

func TestSource_Run_change(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "v: 1\n", "b.yaml": "b\n"})
	h := start(t, root, nil, nil)
	first := h.nextSnapshot()

	t0 := time.Now()
	writeFiles(t, root, map[string]string{"a.yaml": "v: 2\n"})
	res, _ := h.waitFor("a.yaml v2", hasFile("a.yaml", "v: 2\n"))
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("change seen after %v, want within 2s", d)
	}
	if res.Snapshot.Revision == first.Revision {
		t.Error("revision did not change")
	}
	if want := wantRevision(map[string]string{"a.yaml": "v: 2\n", "b.yaml": "b\n"}); res.Snapshot.Revision != want {
		t.Errorf("Revision = %s, want %s", res.Snapshot.Revision, want)
	}

	// A deleted file leaves the snapshot.
	if err := os.Remove(filepath.Join(root, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("b.yaml gone", func(res sources.Result) bool {
		return res.Snapshot != nil && slices.Equal(paths(res.Snapshot), []string{"a.yaml"})
	})
}

func TestSource_Run_burst(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, nil, nil)
	if snap := h.nextSnapshot(); len(snap.Files) != 0 {
		t.Fatalf("empty dir: got files %q", paths(snap))
	}

	for i := range 50 {
		writeFiles(t, root, map[string]string{fmt.Sprintf("f%02d.yaml", i): fmt.Sprintf("i: %d\n", i)})
	}
	_, n := h.waitFor("all 50 files", func(res sources.Result) bool {
		return res.Snapshot != nil && len(res.Snapshot.Files) == 50
	})
	if n > 3 {
		t.Errorf("a burst of 50 writes gave %d snapshots, want at most 3", n)
	}
}

func TestSource_Run_newSubdirectory(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, nil, nil)
	h.nextSnapshot()

	// mkdir -p creates both levels before any watch can be added on the
	// first; the read after the Create event must still find everything.
	writeFiles(t, root, map[string]string{"new/deeper/x.yaml": "x\n"})
	h.waitFor("new/deeper/x.yaml", hasFile("new/deeper/x.yaml", "x\n"))

	// Now the new directories are watched: a later change inside is seen.
	writeFiles(t, root, map[string]string{"new/deeper/y.yaml": "y\n"})
	h.waitFor("new/deeper/y.yaml", hasFile("new/deeper/y.yaml", "y\n"))

	// A directory moved in from outside the tree is read and watched too.
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"moved/z.yaml": "z\n"})
	if err := os.Rename(filepath.Join(outside, "moved"), filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("moved/z.yaml", hasFile("moved/z.yaml", "z\n"))
	writeFiles(t, root, map[string]string{"moved/w.yaml": "w\n"})
	h.waitFor("moved/w.yaml", hasFile("moved/w.yaml", "w\n"))

	// A directory renamed within the tree keeps being watched under its
	// new name.
	if err := os.Rename(filepath.Join(root, "new"), filepath.Join(root, "renamed")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("renamed/deeper/x.yaml", hasFile("renamed/deeper/x.yaml", "x\n"))
	writeFiles(t, root, map[string]string{"renamed/deeper/v.yaml": "v\n"})
	h.waitFor("renamed/deeper/v.yaml", hasFile("renamed/deeper/v.yaml", "v\n"))
}

func TestSource_Run_unchangedRewrite(t *testing.T) {
	root, scratch := t.TempDir(), t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "a\n"})
	h := start(t, root, nil, nil)
	first := h.nextSnapshot()
	h.settle()

	// The same bytes, saved the way an editor does, and a chmod: both
	// raise events, neither changes the content.
	writeAtomic(t, scratch, filepath.Join(root, "a.yaml"), "a\n")
	if err := os.Chmod(filepath.Join(root, "a.yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.nextRead()
	if r.sent || r.res.Err != nil || r.res.Snapshot.Revision != first.Revision {
		t.Fatalf("read after an unchanged rewrite: sent=%v %s; want unsent, same revision", r.sent, describe(r.res))
	}
	h.assertNothingSent()

	// The next Result is the next real change.
	writeAtomic(t, scratch, filepath.Join(root, "marker.yaml"), "m\n")
	if res := h.next(); !hasFile("marker.yaml", "m\n")(res) {
		t.Fatalf("got %s, want the snapshot with marker.yaml", describe(res))
	}
}

func TestSource_Run_dotFolders(t *testing.T) {
	root, scratch := t.TempDir(), t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "a\n", ".git/HEAD": "ref: main\n"})
	h := start(t, root, nil, nil)
	first := h.nextSnapshot()
	h.settle()

	writeFiles(t, root, map[string]string{
		".git/HEAD":               "ref: other\n",
		".git/objects/ab/cdef":    "blob",
		".github/workflows/x.yml": "on: push\n",
		"sub/.cache/y.yaml":       "y\n",
	})
	// The next Result is the next visible change, with no dot-folder in it.
	writeAtomic(t, scratch, filepath.Join(root, "marker.yaml"), "m\n")
	res := h.next()
	if !hasFile("marker.yaml", "m\n")(res) {
		t.Fatalf("got %s, want the snapshot with marker.yaml", describe(res))
	}
	if got, want := paths(res.Snapshot), []string{"a.yaml", "marker.yaml"}; !slices.Equal(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}
	if res.Snapshot.Revision == first.Revision {
		t.Error("revision did not change")
	}
}

func TestSource_Run_rootRemoved(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	writeFiles(t, root, map[string]string{"a.yaml": "a\n", "sub/b.yaml": "b\n"})
	h := start(t, root, func(c *Config) { c.PollInterval = 20 * time.Millisecond }, nil)
	h.nextSnapshot()

	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	res, _ := h.waitFor("ErrRoot", isErr(ErrRoot))
	if !strings.Contains(res.Err.Error(), root) {
		t.Errorf("error %q does not name the root %s", res.Err, root)
	}

	writeFiles(t, root, map[string]string{"c.yaml": "c\n"})
	res, _ = h.waitFor("c.yaml after recreation", hasFile("c.yaml", "c\n"))
	if got := paths(res.Snapshot); !slices.Equal(got, []string{"c.yaml"}) {
		t.Errorf("paths = %q, want [c.yaml]", got)
	}

	// The recreated root is watched again (polling stops once it is back).
	writeFiles(t, root, map[string]string{"d/e.yaml": "e\n"})
	h.waitFor("d/e.yaml", hasFile("d/e.yaml", "e\n"))

	// A root replaced by a file is an error too.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Dir(root), map[string]string{"repo": "not a dir"})
	h.waitFor("ErrRoot for a file", isErr(ErrRoot))
}

func TestSource_Run_pollFallback(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "a\n"})
	h := start(t, root,
		func(c *Config) { c.PollInterval = 20 * time.Millisecond },
		func(s *Source) {
			s.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("inotify: too many instances") }
		})
	if res := h.next(); !hasFile("a.yaml", "a\n")(res) {
		t.Fatalf("first result %s", describe(res))
	}
	writeFiles(t, root, map[string]string{"a.yaml": "a2\n", "new/b.yaml": "b\n"})
	h.waitFor("polled change", func(res sources.Result) bool {
		return hasFile("a.yaml", "a2\n")(res) && hasFile("new/b.yaml", "b\n")(res)
	})
}

func TestSource_Trigger(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"a.yaml": "a\n"})
	h := start(t, root,
		// No watcher and no polling to speak of: only Trigger reads.
		func(c *Config) { c.PollInterval = time.Hour },
		func(s *Source) {
			s.newWatcher = func() (*fsnotify.Watcher, error) { return nil, errors.New("no inotify") }
			// Triggers before Run neither block nor pile up.
			for range 1000 {
				s.Trigger()
			}
		})
	h.nextSnapshot()
	if r := h.nextRead(); !r.sent {
		t.Fatal("first read not sent")
	}
	// The 1000 early Triggers make one more read, which finds nothing new.
	if r := h.nextRead(); r.sent {
		t.Fatalf("read for the early Triggers sent %s", describe(r.res))
	}

	writeFiles(t, root, map[string]string{"a.yaml": "a2\n"})
	h.src.Trigger()
	if res := h.next(); !hasFile("a.yaml", "a2\n")(res) {
		t.Fatalf("after Trigger got %s, want a.yaml = a2", describe(res))
	}
	h.settle()

	// Trigger on an unchanged tree reads but sends nothing.
	h.src.Trigger()
	if r := h.nextRead(); r.sent {
		t.Fatalf("unchanged tree: read sent %s", describe(r.res))
	}
	h.assertNothingSent()
}

func TestSource_Run_continuousChanges(t *testing.T) {
	root := t.TempDir()
	h := start(t, root, nil, nil)
	h.nextSnapshot()

	// A writer that never pauses for a whole Debounce must not starve the
	// reads: one comes at most 10×Debounce after the first change.
	ctx, cancel := context.WithCancel(t.Context())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(DefaultDebounce / 5)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := os.WriteFile(filepath.Join(root, "busy.log"), []byte(fmt.Sprint(i)), 0o644); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { cancel(); <-stopped }()
	h.waitFor("a snapshot while the writer runs", func(res sources.Result) bool {
		return res.Snapshot != nil && len(res.Snapshot.Files) == 1
	})
}

func TestSource_Run_cancel(t *testing.T) {
	t.Run("returns nil and leaks no goroutine", func(t *testing.T) {
		root := t.TempDir()
		writeFiles(t, root, map[string]string{"a/b.yaml": "b\n"})
		before := runtime.NumGoroutine()
		h := start(t, root, nil, nil)
		h.nextSnapshot()
		if err := h.stop(); err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		// The goroutine that called Run exits right after it returns.
		deadline := time.Now().Add(waitTimeout)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Fatalf("%d goroutines, %d before Run:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(time.Millisecond) // polling a count; no event exists to wait on
		}
	})

	t.Run("while blocked sending", func(t *testing.T) {
		root := t.TempDir()
		s, err := New(Config{Name: "x", Path: root, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, make(chan sources.Result)) }() // nobody receives
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run = %v, want nil", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Run blocked in a send after cancel")
		}
	})

	t.Run("second Run refused", func(t *testing.T) {
		h := start(t, t.TempDir(), nil, nil)
		h.nextSnapshot()
		if err := h.src.Run(t.Context(), make(chan sources.Result)); err == nil {
			t.Fatal("second Run: got nil, want an error")
		}
	})
}
