package simulated

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Defaults for Config's zero values.
const (
	DefaultName    = "sim"
	DefaultVersion = "0.1.0"
	DefaultNodeIP  = "127.0.0.1"
)

// Exit codes of stopped containers: a container that exits on SIGTERM
// exits 0, one that outlives the timeout is SIGKILLed (128+9), as is one
// whose sandbox stops under it.
const (
	exitStopped = 0
	exitKilled  = 137
)

var _ runtime.Runtime = (*Runtime)(nil)

// Config configures a simulated runtime; the zero value works once the
// kubelet gives it a pod CIDR.
type Config struct {
	// Name and Version are what Version reports; the kubelet also makes
	// containerIDs "<Name>://<id>" of Name. Defaults DefaultName and
	// DefaultVersion.
	Name, Version string
	// NodeIP is the address of host-network sandboxes; default
	// DefaultNodeIP.
	NodeIP string
	// SandboxIP, when set, is the address of every pod sandbox, and the
	// pod network is ready without a pod CIDR. Tests use 127.0.0.1 so that
	// httpGet and tcpSocket probes reach a server they run.
	SandboxIP string
	// Images are present from the start; any other ref is "pulled" by
	// PullImage, after PullDelay.
	Images    []string
	PullDelay time.Duration
}

// Runtime is an in-memory runtime.Runtime. Its methods are safe for
// concurrent use; the only goroutines it starts are timers.
type Runtime struct {
	cfg Config

	mu         sync.Mutex
	cidr       netip.Prefix
	ipsUsed    map[netip.Addr]bool
	images     map[string]*runtime.Image
	sandboxes  map[string]*sandbox
	containers map[string]*container
	records    []*ContainerRecord
	stops      []StopCall
	execs      []ExecCall
	pulls      []string
	pullCreds  map[string][]runtime.RegistryCredential // by image, the last pull's
	// execCodes overrides AnnotationExecExitCode per "podUID/container".
	execCodes map[string]int
}

type sandbox struct {
	runtime.Sandbox
	annotations map[string]string
}

type container struct {
	status runtime.ContainerStatus
	knobs  knobs
	record *ContainerRecord
	// exitTimer ends the container after its run duration; logTimer
	// writes its periodic lines. Both are stopped when it exits.
	exitTimer, logTimer *time.Timer
	ticks               int
	// exited is closed when the container exits, for StopContainer.
	exited chan struct{}
}

// ContainerRecord is one CreateContainer call as the runtime saw it.
type ContainerRecord struct {
	ID        string
	SandboxID string
	PodUID    string
	// Config is the final ContainerConfig, env resolved.
	Config    runtime.ContainerConfig
	CreatedAt time.Time
	// StartedAt is zero until StartContainer succeeded.
	StartedAt time.Time
}

// StopCall is one StopContainer call.
type StopCall struct {
	ID, PodUID, Name string
	Timeout          time.Duration
	At               time.Time
}

// ExecCall is one ExecSync call.
type ExecCall struct {
	ID, PodUID, Name string
	Cmd              []string
	Timeout          time.Duration
	ExitCode         int
}

// New returns an empty runtime with cfg's images.
func New(cfg Config) *Runtime {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.NodeIP == "" {
		cfg.NodeIP = DefaultNodeIP
	}
	r := &Runtime{
		cfg:        cfg,
		ipsUsed:    map[netip.Addr]bool{},
		images:     map[string]*runtime.Image{},
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
		execCodes:  map[string]int{},
		pullCreds:  map[string][]runtime.RegistryCredential{},
	}
	for _, ref := range cfg.Images {
		r.images[normalize(ref)] = newImage(ref)
	}
	return r
}

func newImage(ref string) *runtime.Image {
	ref = normalize(ref)
	sum := sha256.Sum256([]byte(ref))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	name := ref
	if i := strings.LastIndexAny(ref, ":@"); i > 0 && !strings.Contains(ref[i:], "/") {
		name = ref[:i]
	}
	return &runtime.Image{ID: digest, Ref: ref, RepoDigest: name + "@" + digest, Size: 1 << 20}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func notFound(kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, runtime.ErrNotFound)
}

// Version reports the configured name and version.
func (r *Runtime) Version(context.Context) (string, string, error) {
	return r.cfg.Name, r.cfg.Version, nil
}

// Status is always runtime-ready; the network is ready once there is a
// pod CIDR or a fixed SandboxIP.
func (r *Runtime) Status(context.Context) (runtime.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := runtime.Status{RuntimeReady: true, NetworkReady: r.cfg.SandboxIP != "" || r.cidr.IsValid()}
	if !st.NetworkReady {
		st.Reason = "no pod CIDR yet"
	}
	return st, nil
}

// SetPodCIDR sets where sandbox addresses come from.
func (r *Runtime) SetPodCIDR(_ context.Context, cidr string) error {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() || p.Bits() > 30 {
		return fmt.Errorf("pod CIDR %q: want an IPv4 CIDR of /30 or wider", cidr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cidr = p.Masked()
	return nil
}

// ImageStatus finds a present image.
func (r *Runtime) ImageStatus(_ context.Context, ref string) (*runtime.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	img, ok := r.images[normalize(ref)]
	if !ok {
		return nil, notFound("image", ref)
	}
	c := *img
	return &c, nil
}

// PullImage makes ref present after Config.PullDelay, unless a sandbox's
// AnnotationPullError names it.
func (r *Runtime) PullImage(ctx context.Context, ref string, creds []runtime.RegistryCredential) (*runtime.Image, error) {
	norm := normalize(ref)
	r.mu.Lock()
	r.pulls = append(r.pulls, norm)
	r.pullCreds[norm] = slices.Clone(creds)
	failing := false
	for _, sb := range r.sandboxes {
		if slices.Contains(pullErrors(sb.annotations), norm) {
			failing = true
		}
	}
	r.mu.Unlock()
	if err := sleep(ctx, r.cfg.PullDelay); err != nil {
		return nil, err
	}
	if failing {
		return nil, fmt.Errorf("pull %s: %s: not found", ref, norm)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	img, ok := r.images[norm]
	if !ok {
		img = newImage(ref)
		r.images[norm] = img
	}
	c := *img
	return &c, nil
}

// RunPodSandbox creates a ready sandbox with the next free address.
func (r *Runtime) RunPodSandbox(_ context.Context, cfg *runtime.SandboxConfig) (*runtime.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ip string
	switch {
	case cfg.HostNetwork:
		ip = r.cfg.NodeIP
	case r.cfg.SandboxIP != "":
		ip = r.cfg.SandboxIP
	case !r.cidr.IsValid():
		return nil, errors.New("run sandbox: no pod CIDR yet")
	default:
		addr, err := r.allocateLocked()
		if err != nil {
			return nil, err
		}
		ip = addr.String()
	}
	sb := &sandbox{
		Sandbox: runtime.Sandbox{ID: newID(), PodUID: cfg.PodUID, Namespace: cfg.Namespace, Name: cfg.Name,
			Attempt: cfg.Attempt, State: runtime.SandboxReady, IP: ip, CreatedAt: time.Now(), Labels: maps.Clone(cfg.Labels)},
		annotations: maps.Clone(cfg.Annotations),
	}
	r.sandboxes[sb.ID] = sb
	out := sb.Sandbox
	out.Labels = maps.Clone(sb.Labels)
	return &out, nil
}

// allocateLocked returns the first free host address of the pod CIDR,
// skipping the network address and the gateway (.1), as host-local does.
func (r *Runtime) allocateLocked() (netip.Addr, error) {
	a := r.cidr.Addr().Next().Next()
	for ; r.cidr.Contains(a) && r.cidr.Contains(a.Next()); a = a.Next() {
		if !r.ipsUsed[a] {
			r.ipsUsed[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("run sandbox: pod CIDR %s is full", r.cidr)
}

// StopPodSandbox kills the sandbox's running containers and frees its
// address.
func (r *Runtime) StopPodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, ok := r.sandboxes[id]
	if !ok {
		return nil
	}
	for _, c := range r.containers {
		if c.status.SandboxID == id {
			r.exitLocked(c, exitKilled, "Error")
		}
	}
	if sb.State == runtime.SandboxReady {
		sb.State = runtime.SandboxNotReady
		if a, err := netip.ParseAddr(sb.IP); err == nil && r.cidr.Contains(a) {
			delete(r.ipsUsed, a)
		}
	}
	return nil
}

// RemovePodSandbox removes a sandbox and whatever containers are left in
// it.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	if err := r.StopPodSandbox(ctx, id); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for cid, c := range r.containers {
		if c.status.SandboxID == id {
			delete(r.containers, cid)
		}
	}
	delete(r.sandboxes, id)
	return nil
}

// ListPodSandboxes returns the sandboxes that match filter.
func (r *Runtime) ListPodSandboxes(_ context.Context, filter runtime.SandboxFilter) ([]*runtime.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*runtime.Sandbox, 0, len(r.sandboxes))
	for _, sb := range r.sandboxes {
		if filter.PodUID != "" && sb.PodUID != filter.PodUID {
			continue
		}
		s := sb.Sandbox
		s.Labels = maps.Clone(sb.Labels)
		out = append(out, &s)
	}
	return out, nil
}

// CreateContainer records cfg and creates the container in a ready
// sandbox.
func (r *Runtime) CreateContainer(_ context.Context, sandboxID string, cfg *runtime.ContainerConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, ok := r.sandboxes[sandboxID]
	if !ok {
		return "", notFound("sandbox", sandboxID)
	}
	if sb.State != runtime.SandboxReady {
		return "", fmt.Errorf("create container %s: sandbox %s is not ready", cfg.Name, sandboxID)
	}
	k, err := knobsFor(sb.annotations, cfg.Name)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.Name, err)
	}
	img := r.images[normalize(cfg.Image)]
	if img == nil {
		return "", fmt.Errorf("create container %s: image %q: %w", cfg.Name, cfg.Image, runtime.ErrNotFound)
	}
	id := newID()
	rec := &ContainerRecord{ID: id, SandboxID: sandboxID, PodUID: sb.PodUID, Config: copyConfig(cfg), CreatedAt: time.Now()}
	r.records = append(r.records, rec)
	r.containers[id] = &container{
		status: runtime.ContainerStatus{ID: id, SandboxID: sandboxID, PodUID: sb.PodUID, Name: cfg.Name,
			Attempt: cfg.Attempt, State: runtime.ContainerCreated, CreatedAt: rec.CreatedAt,
			Image: cfg.Image, ImageID: img.RepoDigest, LogPath: cfg.LogPath,
			Labels: maps.Clone(cfg.Labels), Annotations: maps.Clone(cfg.Annotations)},
		knobs:  k,
		record: rec,
		exited: make(chan struct{}),
	}
	return id, nil
}

func copyConfig(cfg *runtime.ContainerConfig) runtime.ContainerConfig {
	c := *cfg
	c.Command = slices.Clone(cfg.Command)
	c.Args = slices.Clone(cfg.Args)
	c.Env = slices.Clone(cfg.Env)
	c.Mounts = slices.Clone(cfg.Mounts)
	c.Labels = maps.Clone(cfg.Labels)
	c.Annotations = maps.Clone(cfg.Annotations)
	return c
}

// StartContainer runs a created container: after its start delay it is
// running, writes its start lines and arms its exit and log timers.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return notFound("container", id)
	}
	if c.status.State != runtime.ContainerCreated {
		r.mu.Unlock()
		return fmt.Errorf("start container %s: it is %s, not created", id, c.status.State)
	}
	delay := c.knobs.startDelay
	r.mu.Unlock()
	if err := sleep(ctx, delay); err != nil {
		return err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok = r.containers[id]; !ok || c.status.State != runtime.ContainerCreated {
		return fmt.Errorf("start container %s: removed while starting", id)
	}
	now := time.Now()
	c.status.State, c.status.StartedAt, c.record.StartedAt = runtime.ContainerRunning, now, now
	lines := []string{fmt.Sprintf("sim: %s started (attempt %d)", c.status.Name, c.status.Attempt)}
	lines = append(lines, c.knobs.log...)
	writeLog(c.status.LogPath, "stdout", lines...)
	if c.knobs.exits {
		code, reason := c.knobs.exitCode, c.knobs.exitReason
		c.exitTimer = time.AfterFunc(c.knobs.runDuration, func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.exitLocked(c, code, reason)
		})
	}
	if c.knobs.logInterval > 0 {
		c.logTimer = time.AfterFunc(c.knobs.logInterval, func() { r.tick(c) })
	}
	return nil
}

// tick writes one periodic log line and re-arms the timer while running.
func (r *Runtime) tick(c *container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.status.State != runtime.ContainerRunning {
		return
	}
	c.ticks++
	writeLog(c.status.LogPath, "stdout", fmt.Sprintf("tick %d", c.ticks))
	c.logTimer.Reset(c.knobs.logInterval)
}

// exitLocked ends a running (or never started) container. r.mu is held.
func (r *Runtime) exitLocked(c *container, code int32, reason string) {
	switch c.status.State {
	case runtime.ContainerRunning:
	case runtime.ContainerCreated:
		// A created container that never ran just becomes exited.
		c.status.State = runtime.ContainerExited
		c.status.FinishedAt = time.Now()
		close(c.exited)
		return
	default:
		return
	}
	if c.exitTimer != nil {
		c.exitTimer.Stop()
	}
	if c.logTimer != nil {
		c.logTimer.Stop()
	}
	if reason == "" {
		reason = "Completed"
		if code != 0 {
			reason = "Error"
		}
	}
	c.status.State, c.status.FinishedAt = runtime.ContainerExited, time.Now()
	c.status.ExitCode, c.status.Reason = code, reason
	stream := "stdout"
	if code != 0 {
		stream = "stderr"
	}
	writeLog(c.status.LogPath, stream, fmt.Sprintf("sim: %s exited with code %d", c.status.Name, code))
	close(c.exited)
}

// StopContainer "sends SIGTERM": the container exits 0 after its stop
// delay, or is killed (137) at timeout when the delay is longer.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	if !ok {
		r.mu.Unlock()
		return notFound("container", id)
	}
	r.stops = append(r.stops, StopCall{ID: id, PodUID: c.status.PodUID, Name: c.status.Name, Timeout: timeout, At: time.Now()})
	if c.status.State != runtime.ContainerRunning {
		r.exitLocked(c, exitKilled, "Error")
		r.mu.Unlock()
		return nil
	}
	delay, exited := c.knobs.stopDelay, c.exited
	r.mu.Unlock()

	code := int32(exitStopped)
	if delay > 0 {
		t := time.NewTimer(min(delay, timeout))
		defer t.Stop()
		select {
		case <-exited:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if delay > timeout {
			code = exitKilled
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exitLocked(c, code, "")
	return nil
}

// RemoveContainer forgets a container; a running one is killed first.
func (r *Runtime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		r.exitLocked(c, exitKilled, "Error")
		delete(r.containers, id)
	}
	return nil
}

// ListContainers returns the containers matching filter.
func (r *Runtime) ListContainers(_ context.Context, f runtime.ContainerFilter) ([]*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*runtime.ContainerStatus
	for _, c := range r.containers {
		if (f.SandboxID == "" || f.SandboxID == c.status.SandboxID) && (f.PodUID == "" || f.PodUID == c.status.PodUID) {
			out = append(out, copyStatus(&c.status))
		}
	}
	return out, nil
}

// ContainerStatus returns one container.
func (r *Runtime) ContainerStatus(_ context.Context, id string) (*runtime.ContainerStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, notFound("container", id)
	}
	return copyStatus(&c.status), nil
}

func copyStatus(s *runtime.ContainerStatus) *runtime.ContainerStatus {
	c := *s
	c.Labels = maps.Clone(s.Labels)
	c.Annotations = maps.Clone(s.Annotations)
	return &c
}

// ExecSync "runs" cmd in a running container: it exits with the code set
// by SetExecExitCode, else AnnotationExecExitCode, else 0.
func (r *Runtime) ExecSync(_ context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return nil, nil, 0, notFound("container", id)
	}
	if c.status.State != runtime.ContainerRunning {
		return nil, nil, 0, fmt.Errorf("exec in container %s: not running", id)
	}
	code := c.knobs.execExitCode
	if n, ok := r.execCodes[c.status.PodUID+"/"+c.status.Name]; ok {
		code = n
	}
	r.execs = append(r.execs, ExecCall{ID: id, PodUID: c.status.PodUID, Name: c.status.Name, Cmd: slices.Clone(cmd), Timeout: timeout, ExitCode: code})
	return []byte("sim exec: " + strings.Join(cmd, " ") + "\n"), nil, code, nil
}

// writeLog appends lines in the CRI log format. Errors are dropped: a
// simulated container has nowhere to report them, and the kubelet's log
// server shows what is there.
func writeLog(path, stream string, lines ...string) {
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return
	}
	defer f.Close()
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s %s F %s\n", time.Now().UTC().Format(time.RFC3339Nano), stream, l)
	}
	_, _ = f.WriteString(b.String())
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Exec implements runtime.Runtime like ExecSync: it records the call,
// writes "sim exec: CMD" and then whatever stdin holds to stdout (a
// simulated container has no programs), and returns the exit code the
// knobs set.
func (r *Runtime) Exec(ctx context.Context, id string, opts runtime.ExecOptions) (int, error) {
	out, _, code, err := r.ExecSync(ctx, id, opts.Cmd, 0)
	if err != nil {
		return 0, err
	}
	if opts.Stdout != nil {
		if _, err := opts.Stdout.Write(out); err != nil {
			return 0, err
		}
		if opts.Stdin != nil {
			if _, err := io.Copy(opts.Stdout, opts.Stdin); err != nil {
				return 0, err
			}
		}
	}
	return code, nil
}

// ContainerStats implements runtime.Runtime: a simulated container has
// no process, so it uses nothing.
func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtime.ContainerStats, error) {
	st, err := r.ContainerStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.State != runtime.ContainerRunning {
		return nil, fmt.Errorf("container %s is not running", id)
	}
	return &runtime.ContainerStats{}, nil
}

// Attach implements runtime.Runtime for a running container: a simulated
// container echoes its stdin to stdout (it has no program of its own),
// until stdin ends or ctx is done.
func (r *Runtime) Attach(ctx context.Context, id string, opts runtime.AttachOptions) error {
	st, err := r.ContainerStatus(ctx, id)
	if err != nil {
		return err
	}
	if st.State != runtime.ContainerRunning {
		return fmt.Errorf("container %s is not running", id)
	}
	if opts.Stdin == nil || opts.Stdout == nil {
		<-ctx.Done()
		return nil
	}
	_, err = io.Copy(opts.Stdout, opts.Stdin)
	return err
}

// PortForward implements runtime.Runtime: a simulated pod has no network
// namespace, so the port is dialed at the sandbox's address (a test
// serves there, e.g. on SandboxIP 127.0.0.1).
func (r *Runtime) PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error {
	r.mu.Lock()
	sb, ok := r.sandboxes[sandboxID]
	var ip string
	if ok {
		ip = sb.IP
	}
	r.mu.Unlock()
	if !ok {
		return notFound("sandbox", sandboxID)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	return runtime.Forward(conn, stream)
}
