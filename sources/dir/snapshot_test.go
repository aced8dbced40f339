package dir

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{"ns.yaml": "kind: Namespace\n", "app/deploy.yaml": "kind: Deployment\n", ".kiln.yaml": "x: 1\n"}
	writeFiles(t, root, files)
	writeFiles(t, root, map[string]string{".git/config": "[core]\n"})
	if err := os.Symlink("ns.yaml", filepath.Join(root, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	files["link.yaml"] = files["ns.yaml"]

	snap, err := Read(t.Context(), "local", root)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileMap(snap); !maps.Equal(got, files) {
		t.Fatalf("files: got %v, want %v", got, files)
	}
	if snap.Source != "local" || snap.Revision != wantRevision(files) {
		t.Fatalf("snapshot %q %q, want revision %s", snap.Source, snap.Revision, wantRevision(files))
	}
	// The same revision as a running source's first snapshot.
	h := start(t, root, nil, nil)
	if first := h.nextSnapshot(); first.Revision != snap.Revision {
		t.Fatalf("Run revision %s, Read revision %s", first.Revision, snap.Revision)
	}
}

func TestRead_errors(t *testing.T) {
	if _, err := Read(t.Context(), "local", filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrRoot) {
		t.Fatalf("missing root: %v, want ErrRoot", err)
	}
	root := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "escape.yaml")); err != nil {
		t.Fatal(err)
	}
	var fe *FileError
	if _, err := Read(t.Context(), "local", root); !errors.As(err, &fe) || fe.Path != "escape.yaml" || !errors.Is(err, ErrSymlink) {
		t.Fatalf("symlink out of the root: %v, want a FileError for escape.yaml", err)
	}
}
