package containerd

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// defaultCPUPeriod is the CFS period used when only a quota is given.
const defaultCPUPeriod = 100000

// containerArgs merges Kubernetes's command and args with the image's
// ENTRYPOINT and CMD: command replaces the entrypoint and drops the CMD;
// args replace the CMD (the rule CRI runtimes take from Docker).
func containerArgs(command, args, entrypoint, cmd []string) ([]string, error) {
	if len(command) == 0 {
		if len(args) == 0 {
			args = cmd
		}
		if !(len(entrypoint) == 1 && entrypoint[0] == "") {
			command = entrypoint
		}
	}
	out := append(append([]string{}, command...), args...)
	if len(out) == 0 {
		return nil, errors.New("no command: the container has none and the image has no ENTRYPOINT or CMD")
	}
	return out, nil
}

// specOpts builds the OCI spec of container id on top of containerd's
// default spec and the image's config.
func specOpts(id string, sb *sandboxRecord, cfg *runtime.ContainerConfig, img ctrd.Image, ic ocispec.ImageConfig) ([]oci.SpecOpts, error) {
	args, err := containerArgs(cfg.Command, cfg.Args, ic.Entrypoint, ic.Cmd)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", cfg.Name, err)
	}
	hostname := sb.Hostname
	if hostname == "" {
		hostname = sb.Name
	}
	env := make([]string, 0, len(cfg.Env)+1)
	if !sb.HostNetwork {
		env = append(env, "HOSTNAME="+hostname)
	}
	for _, kv := range cfg.Env {
		env = append(env, kv.Key+"="+kv.Value)
	}
	opts := []oci.SpecOpts{
		withImageConfig(img, ic),
		oci.WithProcessArgs(args...),
		// Config env over the image's, as Kubernetes does.
		oci.WithEnv(env),
	}
	if cfg.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(cfg.WorkingDir))
	}
	if cfg.TTY {
		opts = append(opts, oci.WithTTY)
	}
	switch {
	case cfg.RunAsUser != nil && cfg.RunAsGroup != nil:
		opts = append(opts, withUIDGID(uint32(*cfg.RunAsUser), uint32(*cfg.RunAsGroup)))
	case cfg.RunAsUser != nil:
		// The group comes from the image's /etc/passwd, else 0.
		opts = append(opts, oci.WithUserID(uint32(*cfg.RunAsUser)))
	case cfg.RunAsGroup != nil:
		opts = append(opts, withGID(uint32(*cfg.RunAsGroup)))
	}
	if len(cfg.SupplementalGroups) > 0 {
		opts = append(opts, withSupplementalGroups(cfg.SupplementalGroups))
	}
	if len(cfg.Mounts) > 0 {
		opts = append(opts, withBindMounts(cfg.Mounts))
	}
	if sb.HostNetwork {
		opts = append(opts,
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithHostNamespace(specs.UTSNamespace))
	} else {
		opts = append(opts,
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: sb.NetNS}),
			oci.WithHostname(hostname))
	}
	if sb.CgroupParent != "" {
		opts = append(opts, oci.WithCgroup(path.Join(sb.CgroupParent, id)))
	}
	res := cfg.Resources
	if res.CPUShares > 0 {
		opts = append(opts, oci.WithCPUShares(uint64(res.CPUShares)))
	}
	if res.CPUQuota > 0 {
		period := res.CPUPeriod
		if period <= 0 {
			period = defaultCPUPeriod
		}
		opts = append(opts, oci.WithCPUCFS(res.CPUQuota, uint64(period)))
	}
	if res.MemoryLimit > 0 {
		opts = append(opts, oci.WithMemoryLimit(uint64(res.MemoryLimit)))
	}
	return opts, nil
}

func withUIDGID(uid, gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.User.UID = uid
		s.Process.User.GID = gid
		return nil
	}
}

func withGID(gid uint32) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Process.User.GID = gid
		return nil
	}
}

// withBindMounts adds the kubelet's mounts as recursive binds; one on a
// default mount's destination (e.g. /dev/shm) replaces it.
func withBindMounts(ms []runtime.Mount) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		dest := map[string]bool{}
		for _, m := range ms {
			dest[path.Clean(m.ContainerPath)] = true
		}
		kept := s.Mounts[:0]
		for _, m := range s.Mounts {
			if !dest[path.Clean(m.Destination)] {
				kept = append(kept, m)
			}
		}
		s.Mounts = kept
		for _, m := range ms {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			s.Mounts = append(s.Mounts, specs.Mount{
				Destination: m.ContainerPath,
				Type:        "bind",
				Source:      m.HostPath,
				Options:     []string{"rbind", "rprivate", mode},
			})
		}
		return nil
	}
}

// defaultPath is the PATH of an image that sets no env.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// withImageConfig applies the image's env (or a default PATH), working
// dir and user from its already-read config. It does what
// oci.WithImageConfig does, but that one reads the config blob again and
// mounts the rootfs to read /etc/group for every container; here the
// rootfs is read only for a user given by name.
func withImageConfig(img ctrd.Image, ic ocispec.ImageConfig) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		env := ic.Env
		if len(env) == 0 {
			env = []string{defaultPath}
		}
		if err := oci.WithEnv(env)(ctx, client, c, s); err != nil {
			return err
		}
		cwd := ic.WorkingDir
		if cwd == "" {
			cwd = "/"
		}
		s.Process.Cwd = cwd
		uid, gid, numeric := numericUser(ic.User)
		if !numeric {
			if err := oci.WithUser(ic.User)(ctx, client, c, s); err != nil {
				return err
			}
			return oci.WithAdditionalGIDs(ic.User)(ctx, client, c, s)
		}
		s.Process.User.UID, s.Process.User.GID = uid, gid
		s.Process.User.AdditionalGids = []uint32{gid}
		return nil
	}
}

// numericUser parses "", "uid" or "uid:gid"; ok is false for names.
func numericUser(u string) (uid, gid uint32, ok bool) {
	if u == "" {
		return 0, 0, true
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	un, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	if !hasGroup {
		return uint32(un), 0, true
	}
	gn, err := strconv.ParseUint(gs, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	return uint32(un), uint32(gn), true
}

// withSupplementalGroups adds gids to the process's groups.
func withSupplementalGroups(gids []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		for _, g := range gids {
			if !slices.Contains(s.Process.User.AdditionalGids, uint32(g)) {
				s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
			}
		}
		return nil
	}
}
