package imagebuild

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Format is an image archive's layout.
type Format int

const (
	// OCI is an OCI image layout (oci-layout, index.json, blobs/) in a tar.
	OCI Format = iota
	// Docker is the format of `docker save` (manifest.json).
	Docker
)

// The annotations an OCI index entry carries so that importers name the
// image: containerd reads the full reference from its own annotation, and
// other tools the tag from the OCI one.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// WriteFile writes img, named ref, to path in format. It writes a hidden
// temporary file beside path and renames it, so a directory watcher (kiln's
// DATA_DIR/images) never sees a half-written archive under the final name.
func WriteFile(path, ref string, img v1.Image, format Format) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	switch format {
	case Docker:
		err = WriteDocker(tmp, ref, img)
	case OCI:
		err = WriteOCI(tmp, ref, img)
	default:
		err = fmt.Errorf("unknown format %d", format)
	}
	if err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteDocker writes img as a docker-format archive tagged ref.
func WriteDocker(w io.Writer, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image ref %q: %w", ref, err)
	}
	return tarball.Write(tag, img, w)
}

// WriteOCI writes img as an OCI image layout in a tar, its index entry
// annotated with ref.
func WriteOCI(w io.Writer, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image ref %q: %w", ref, err)
	}
	tw := tar.NewWriter(w)
	epoch := time.Unix(0, 0)
	put := func(p string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	putBlob := func(h v1.Hash, size int64, r io.ReadCloser) error {
		defer r.Close()
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/" + h.Algorithm + "/" + h.Hex, Mode: 0o644, Size: size, ModTime: epoch}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}

	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		if err := putBlob(d, size, rc); err != nil {
			return err
		}
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := put("blobs/"+cfgName.Algorithm+"/"+cfgName.Hex, rawCfg); err != nil {
		return err
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if err := put("blobs/"+digest.Algorithm+"/"+digest.Hex, rawManifest); err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	arch := cf.Architecture
	if arch == "" {
		arch = runtime.GOARCH
	}
	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     "application/vnd.oci.image.index.v1+json",
		Manifests: []v1.Descriptor{{
			MediaType: mt,
			Digest:    digest,
			Size:      int64(len(rawManifest)),
			Platform:  &v1.Platform{OS: "linux", Architecture: arch},
			Annotations: map[string]string{
				annotationContainerdName: fullName(tag),
				annotationRefName:        tag.TagStr(),
			},
		}},
	}
	b, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := put("index.json", b); err != nil {
		return err
	}
	return tw.Close()
}

// fullName is the normalized reference ("docker.io/library/x:tag" for
// "x:tag") that containerd stores images under.
func fullName(tag name.Tag) string {
	repo := tag.Context().Name() // "index.docker.io/library/x"
	if r, ok := strings.CutPrefix(repo, name.DefaultRegistry+"/"); ok {
		repo = "docker.io/" + r
	}
	return repo + ":" + tag.TagStr()
}
