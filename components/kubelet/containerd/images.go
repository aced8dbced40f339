package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/remotes/docker"
	ctrdlog "github.com/containerd/log"
	"github.com/distribution/reference"
	"github.com/fsnotify/fsnotify"
	"github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// importSettle is how long an archive must go without writes before it is
// imported; a copy in progress produces a stream of write events.
const importSettle = 300 * time.Millisecond

// archiveStamp identifies a version of an archive file and the images it
// held, so an unchanged archive is not imported again, even after a
// restart (the stamps are kept in a file), as long as its images are
// still there.
type archiveStamp struct {
	Size   int64     `json:"size"`
	Mod    time.Time `json:"mod"`
	Images []string  `json:"images"`
}

func (a archiveStamp) sameFile(b archiveStamp) bool {
	return a.Size == b.Size && a.Mod.Equal(b.Mod)
}

// stampsFile keeps the stamps of this runtime's namespace.
func (r *Runtime) stampsFile() string {
	return filepath.Join(r.p.dir, "imported-"+r.cfg.Namespace+".json")
}

// loadStamps reads the stamps of an earlier run; a missing or bad file
// only means archives are imported again.
func (r *Runtime) loadStamps() {
	b, err := os.ReadFile(r.stampsFile())
	if err != nil {
		return
	}
	var m map[string]archiveStamp
	if json.Unmarshal(b, &m) == nil {
		r.mu.Lock()
		r.imported = m
		r.mu.Unlock()
	}
}

// saveStamps writes the stamps; the caller holds r.mu.
func (r *Runtime) saveStamps() {
	b, err := json.Marshal(r.imported)
	if err == nil {
		err = writeFileAtomic(r.stampsFile(), b)
	}
	if err != nil {
		r.log.Warn("cannot save imported archives list", logKeyErr, err)
	}
}

// isArchiveName skips hidden and temporary files: writers (imagebuild, cp
// to a dot-file and mv) rename complete archives into place.
func isArchiveName(name string) bool {
	return !strings.HasPrefix(name, ".") && !strings.HasSuffix(name, ".tmp") && !strings.HasSuffix(name, ".part")
}

// importAll imports every archive in ImagesDir. A bad archive is logged
// and skipped: the others, and the images already present, still serve.
func (r *Runtime) importAll(ctx context.Context) {
	entries, err := os.ReadDir(r.cfg.ImagesDir)
	if err != nil {
		r.log.Warn("cannot read images dir", logKeyFile, r.cfg.ImagesDir, logKeyErr, err)
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !isArchiveName(e.Name()) {
			continue
		}
		path := filepath.Join(r.cfg.ImagesDir, e.Name())
		if err := r.importArchive(ctx, path); err != nil {
			r.log.Warn("cannot import image archive", logKeyFile, path, logKeyErr, err)
		}
	}
}

// importArchive imports one docker or OCI-layout archive (tar, optionally
// compressed) and unpacks its images into the snapshotter.
func (r *Runtime) importArchive(ctx context.Context, path string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	stamp := archiveStamp{Size: st.Size(), Mod: st.ModTime()}
	r.mu.Lock()
	prev, ok := r.imported[path]
	r.mu.Unlock()
	if ok && prev.sameFile(stamp) && len(prev.Images) > 0 && imagesPresent(ctx, c, prev.Images) {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	imgs, err := c.Import(r.clientLog(ctx), f)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	names := make([]string, 0, len(imgs))
	for _, img := range imgs {
		if err := ctrd.NewImage(c, img).Unpack(ctx, DefaultSnapshotter); err != nil {
			return fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		names = append(names, img.Name)
	}
	stamp.Images = names
	r.mu.Lock()
	r.imported[path] = stamp
	r.saveStamps()
	r.mu.Unlock()
	r.log.Info("imported image archive", logKeyFile, path, "images", names, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// imagesPresent reports whether every named image exists.
func imagesPresent(ctx context.Context, c *ctrd.Client, names []string) bool {
	for _, n := range names {
		if _, err := c.ImageService().Get(ctx, n); err != nil {
			return false
		}
	}
	return true
}

func (r *Runtime) newImageWatcher() (*fsnotify.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch images dir: %w", err)
	}
	if err := w.Add(r.cfg.ImagesDir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch images dir: %w", err)
	}
	return w, nil
}

// watchImages imports archives added to (or rewritten in) ImagesDir, once
// each has settled, until ctx is done.
func (r *Runtime) watchImages(ctx context.Context, w *fsnotify.Watcher) error {
	defer w.Close()
	due := make(chan string)
	timers := map[string]*time.Timer{}
	defer func() {
		for _, t := range timers {
			t.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Write) {
				continue
			}
			if !isArchiveName(filepath.Base(ev.Name)) {
				continue
			}
			if t, ok := timers[ev.Name]; ok {
				t.Reset(importSettle)
				continue
			}
			name := ev.Name
			timers[name] = time.AfterFunc(importSettle, func() {
				select {
				case due <- name:
				case <-ctx.Done():
				}
			})
		case name := <-due:
			delete(timers, name)
			if st, err := os.Stat(name); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if err := r.importArchive(ctx, name); err != nil && ctx.Err() == nil {
				r.log.Warn("cannot import image archive", logKeyFile, name, logKeyErr, err)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn("images dir watch error", logKeyErr, err)
		}
	}
}

// normalize turns a reference into containerd's image name:
// "busybox" -> "docker.io/library/busybox:latest".
func normalize(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return named.String(), nil
}

// isImageID reports whether ref is an image ID ("sha256:<hex>"), as
// containerStatuses carry and a kubelet may pass back.
func isImageID(ref string) bool {
	d, err := digest.Parse(ref)
	return err == nil && d.Validate() == nil
}

// findImage returns the local image ref names (by reference or ID), or an
// error wrapping runtime.ErrNotFound.
func (r *Runtime) findImage(ctx context.Context, c *ctrd.Client, ref string) (ctrd.Image, error) {
	if isImageID(ref) {
		imgs, err := c.ListImages(ctx)
		if err != nil {
			return nil, fmt.Errorf("list images: %w", err)
		}
		for _, img := range imgs {
			if img.Target().Digest.String() == ref {
				return img, nil
			}
			if cfg, err := img.Config(ctx); err == nil && cfg.Digest.String() == ref {
				return img, nil
			}
		}
		return nil, fmt.Errorf("image %q %w", ref, runtime.ErrNotFound)
	}
	name, err := normalize(ref)
	if err != nil {
		return nil, err
	}
	img, err := c.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("image %q %w", ref, runtime.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	return img, nil
}

// imageInfo describes img for the kubelet.
func imageInfo(ctx context.Context, img ctrd.Image) (*runtime.Image, error) {
	cfg, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", img.Name(), err)
	}
	size, err := img.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("image %s size: %w", img.Name(), err)
	}
	return &runtime.Image{
		ID:         cfg.Digest.String(),
		Ref:        img.Name(),
		RepoDigest: repoDigest(img),
		Size:       size,
	}, nil
}

// repoDigest is "name@sha256:..." of img's manifest, for
// containerStatuses.imageID.
func repoDigest(img ctrd.Image) string {
	d := img.Target().Digest.String()
	if named, err := reference.ParseNormalizedNamed(img.Name()); err == nil {
		return reference.TrimNamed(named).String() + "@" + d
	}
	return d
}

// ImageStatus implements runtime.Runtime.
func (r *Runtime) ImageStatus(ctx context.Context, ref string) (*runtime.Image, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	img, err := r.findImage(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	return imageInfo(ctx, img)
}

// PullImage implements runtime.Runtime. It pulls with containerd's
// resolver (plain HTTP for loopback registries such as tests' 127.0.0.1
// ones) and unpacks; when the pull fails but the image is present (an
// imported archive, as kiln.dev images are: they have no registry), the
// local one is returned.
func (r *Runtime) PullImage(ctx context.Context, ref string, creds []runtime.RegistryCredential) (*runtime.Image, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	name, err := normalize(ref)
	if err != nil {
		return nil, err
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(docker.MatchLocalhost),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(credsFor(creds)))),
		),
	})
	start := time.Now()
	img, err := c.Pull(r.clientLog(ctx), name,
		ctrd.WithPullUnpack,
		ctrd.WithPullSnapshotter(DefaultSnapshotter),
		ctrd.WithResolver(resolver))
	if err != nil {
		if local, lerr := c.GetImage(ctx, name); lerr == nil {
			r.log.Debug("pull failed, using the local image", logKeyImage, name, logKeyErr, err)
			return imageInfo(ctx, local)
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("pull image %q: %w", ref, ctx.Err())
		}
		if errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("image %q %w: the registry has no such image (%w)", ref, runtime.ErrNotFound, err)
		}
		return nil, fmt.Errorf("image %q %w: it is not among the imported images and the pull failed: %w", ref, runtime.ErrNotFound, err)
	}
	r.log.Info("pulled image", logKeyImage, name, "took", time.Since(start).Round(time.Millisecond))
	return imageInfo(ctx, img)
}

// ensureUnpacked unpacks img into the snapshotter if it is not (an image
// pulled or imported by another client).
func ensureUnpacked(ctx context.Context, img ctrd.Image) error {
	ok, err := img.IsUnpacked(ctx, DefaultSnapshotter)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if err := img.Unpack(ctx, DefaultSnapshotter); err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return fmt.Errorf("unpack %s: %w", img.Name(), err)
	}
	return nil
}

// clientLog routes what containerd's client code logs through logrus
// while serving ctx (the resolver's "trying next host", for one) to the
// runtime's logger at debug level, instead of to kiln's stderr.
func (r *Runtime) clientLog(ctx context.Context) context.Context {
	l := logrus.New()
	l.Out = debugWriter{r.log}
	l.Formatter = &logrus.TextFormatter{DisableTimestamp: true}
	return ctrdlog.WithLogger(ctx, logrus.NewEntry(l))
}

// debugWriter logs each write as one debug record.
type debugWriter struct{ log *slog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug("containerd client", "line", strings.TrimSpace(string(p)))
	return len(p), nil
}

// credsFor answers the resolver's question "which credentials for host"
// from a pod's imagePullSecrets; none is an anonymous pull.
func credsFor(creds []runtime.RegistryCredential) func(host string) (string, string, error) {
	return func(host string) (string, string, error) {
		for _, c := range creds {
			h := c.Host
			if h == "docker.io" {
				// Docker Hub's API host, as containerd resolves it.
				h = "registry-1.docker.io"
			}
			if h == host {
				return c.Username, c.Password, nil
			}
		}
		return "", "", nil
	}
}
