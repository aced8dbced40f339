package imagebuild

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestBuild_files(t *testing.T) {
	img, err := Build(t.Context(), Spec{
		Ref:          "kiln.dev/files:1",
		Files:        []File{{Path: "/etc/app/conf", Data: []byte("x=1\n")}, {Path: "/bin/tool", Mode: 0o755, Data: []byte("#!")}},
		Entrypoint:   []string{"/bin/tool"},
		Env:          []string{"A=b"},
		ExposedPorts: []string{"8080/tcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/bin/tool"}) || !slices.Equal(cf.Config.Env, []string{"A=b"}) || cf.OS != "linux" {
		t.Fatalf("config = %+v", cf.Config)
	}
	if _, ok := cf.Config.ExposedPorts["8080/tcp"]; !ok {
		t.Fatalf("exposed ports = %v", cf.Config.ExposedPorts)
	}
	again, err := Build(t.Context(), Spec{
		Ref:          "kiln.dev/files:1",
		Files:        []File{{Path: "/etc/app/conf", Data: []byte("x=1\n")}, {Path: "/bin/tool", Mode: 0o755, Data: []byte("#!")}},
		Entrypoint:   []string{"/bin/tool"},
		Env:          []string{"A=b"},
		ExposedPorts: []string{"8080/tcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of one spec differ: %s, %s", d1, d2)
	}
	layers, _ := img.Layers()
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if want := []string{"bin/", "etc/", "etc/app/", "etc/app/conf", "bin/tool"}; !slices.Equal(names, want) {
		t.Fatalf("layer = %q, want %q", names, want)
	}
}

func TestWriteFile_formats(t *testing.T) {
	img, err := Build(t.Context(), Spec{Ref: "x", Files: []File{{Path: "/f", Data: []byte("f")}}, Cmd: []string{"/f"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	oci := filepath.Join(dir, "oci.tar")
	if err := WriteFile(oci, "kiln.dev/x:1", img, OCI); err != nil {
		t.Fatal(err)
	}
	var index v1.IndexManifest
	if err := json.Unmarshal(tarEntry(t, oci, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if len(index.Manifests) != 1 || index.Manifests[0].Digest != d ||
		index.Manifests[0].Annotations[annotationContainerdName] != "kiln.dev/x:1" || index.Manifests[0].Annotations[annotationRefName] != "1" {
		t.Fatalf("index = %+v", index)
	}
	if got := tarEntry(t, oci, "blobs/sha256/"+d.Hex); len(got) == 0 {
		t.Fatal("manifest blob missing")
	}

	docker := filepath.Join(dir, "docker.tar")
	if err := WriteFile(docker, "busybox:1", img, Docker); err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(docker, nil)
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := img.ConfigName()
	c2, _ := back.ConfigName()
	if c1 != c2 {
		t.Fatalf("docker archive config %s, want %s", c2, c1)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if fullNameOf(t, "busybox:1") != "docker.io/library/busybox:1" {
		t.Fatal(fullNameOf(t, "busybox:1"))
	}
}

func fullNameOf(t *testing.T, ref string) string {
	t.Helper()
	var index v1.IndexManifest
	p := filepath.Join(t.TempDir(), "i.tar")
	img, _ := Build(t.Context(), Spec{Files: []File{{Path: "/f"}}})
	if err := WriteFile(p, ref, img, OCI); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(tarEntry(t, p, "index.json"), &index); err != nil {
		t.Fatal(err)
	}
	return index.Manifests[0].Annotations[annotationContainerdName]
}

func tarEntry(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no %s", path, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}
