package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one file of the image's layer.
type File struct {
	// Path is absolute inside the image, e.g. "/etc/demo.conf".
	Path string
	// Mode defaults to 0644.
	Mode os.FileMode
	Data []byte
}

// Spec describes an image to build. Every field but Ref is optional.
type Spec struct {
	// Ref names the image, e.g. "kiln.dev/demo-web:0.1.0".
	Ref string
	// GoMain is a main package as `go build` takes it ("./cmd/x" relative
	// to GoDir, or an import path). It is built static for linux and the
	// running architecture and put at BinaryPath.
	GoMain string
	// GoDir is the directory go build runs in (the module root).
	GoDir string
	// BinaryPath defaults to "/" + the last element of GoMain.
	BinaryPath string
	// Files are added to the layer beside the binary.
	Files []File
	// Entrypoint defaults to [BinaryPath] when GoMain is set.
	Entrypoint   []string
	Cmd          []string
	Env          []string
	ExposedPorts []string // "8080/tcp"
	WorkingDir   string
	User         string
	StopSignal   string
	Labels       map[string]string
}

// Build builds the image of spec. The layer's file times and the image's
// creation time are fixed (the Unix epoch), so the same binary gives the
// same digests.
func Build(ctx context.Context, spec Spec) (v1.Image, error) {
	files := append([]File(nil), spec.Files...)
	entrypoint := spec.Entrypoint
	if spec.GoMain != "" {
		bin, err := goBuild(ctx, spec.GoDir, spec.GoMain)
		if err != nil {
			return nil, err
		}
		p := spec.BinaryPath
		if p == "" {
			p = "/" + path.Base(spec.GoMain)
		}
		files = append(files, File{Path: p, Mode: 0o755, Data: bin})
		if entrypoint == nil {
			entrypoint = []string{p}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("image %q: no files and no GoMain", spec.Ref)
	}
	layerTar, err := layerTar(files)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config.Entrypoint = entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.Env = spec.Env
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cf.Config.WorkingDir = spec.WorkingDir
	cf.Config.User = spec.User
	cf.Config.StopSignal = spec.StopSignal
	cf.Config.Labels = spec.Labels
	if len(spec.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return img, nil
}

// goBuild builds a static linux binary of pkg and returns its bytes.
func goBuild(ctx context.Context, dir, pkg string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bin")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return os.ReadFile(out)
}

// layerTar writes files, and the directories above them, as one tar.
func layerTar(files []File) ([]byte, error) {
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	for _, f := range files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("file %q: path must be absolute", f.Path)
		}
		for d := path.Dir(path.Clean(f.Path)); d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names) // parents before children
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path.Clean(f.Path), "/"), Mode: int64(mode.Perm()), Size: int64(len(f.Data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
