package containerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"kiln.dev/kiln/components/internal/imagebuild"
	"kiln.dev/kiln/components/kubelet/runtime"
	"kiln.dev/kiln/components/testenv"
)

// The tests run real containerd (from PATH), runc and the CNI plugins, as
// root. Each node gets its own data dir, containerd namespace, bridge and
// pod CIDR, and leaves no netns, bridge or container behind.

var (
	demoOnce sync.Once
	demoDir  string
	demoImg  v1.Image
	demoErr  error
)

// demoArchive builds the demo image once per test binary and returns the
// path of its OCI archive.
func demoArchive(t testing.TB) string {
	t.Helper()
	demoOnce.Do(func() {
		_, file, _, _ := goruntime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		demoDir, demoErr = os.MkdirTemp("", "kiln-demo-image-")
		if demoErr != nil {
			return
		}
		img, err := imagebuild.Build(t.Context(), imagebuild.DemoWeb(root))
		if err != nil {
			demoErr = err
			return
		}
		demoImg = img
		demoErr = imagebuild.WriteFile(filepath.Join(demoDir, "demo-web.tar"), imagebuild.DemoWebRef, img, imagebuild.OCI)
	})
	if demoErr != nil {
		t.Fatalf("build demo image: %v", demoErr)
	}
	return filepath.Join(demoDir, "demo-web.tar")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if demoDir != "" {
		os.RemoveAll(demoDir)
	}
	os.Exit(code)
}

// requireHost skips (or, under KILN_E2E=require, fails) without root,
// containerd, runc, iptables and the CNI plugins.
func requireHost(t testing.TB) {
	t.Helper()
	testenv.Require(t, "root", os.Geteuid() == 0)
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip"} {
		_, err := exec.LookPath(bin)
		testenv.Require(t, bin+" on PATH", err == nil)
	}
	var cfg Config
	cfg.RootDir = "/"
	_ = cfg.setDefaults()
	for _, p := range cniPlugins {
		_, err := os.Stat(filepath.Join(cfg.CNIBinDir, p))
		testenv.Require(t, "CNI plugin "+p+" in "+cfg.CNIBinDir, err == nil)
	}
}

// testNode is one running Runtime with its own data dir, namespace,
// bridge and pod CIDR.
type testNode struct {
	t      testing.TB
	rt     *Runtime
	root   string
	ns     string
	bridge string
	cidr   string
	cancel context.CancelFunc
	errc   chan error
}

type nodeOptions struct {
	// root, ns, bridge and cidr are reused by restart tests; empty means new.
	root, ns, bridge, cidr string
	// keep leaves containers in place at cleanup (a later node on the
	// same root removes them).
	keep bool
	// endpoint is an existing containerd to use.
	endpoint string
	// logMaxSize and logMaxFiles rotate the container logs; 0: defaults.
	logMaxSize  int64
	logMaxFiles int
}

func startNode(t testing.TB, o nodeOptions) *testNode {
	t.Helper()
	requireHost(t)
	suffix := newID()[:6]
	if o.root == "" {
		o.root = t.TempDir()
		archive := demoArchive(t)
		if err := os.MkdirAll(filepath.Join(o.root, "images"), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(archive)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(o.root, "images", "demo-web.tar"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cleanupHost(t, o.root) })
	}
	if o.ns == "" {
		o.ns = "kiln-test-" + suffix
	}
	if o.bridge == "" {
		o.bridge = "kt" + suffix
		bridge := o.bridge
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", bridge).Run() })
	}
	if o.cidr == "" {
		o.cidr = fmt.Sprintf("10.%d.%d.0/24", 200+rand.IntN(50), rand.IntN(256))
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, err := New(Config{RootDir: o.root, Endpoint: o.endpoint, Namespace: o.ns, BridgeName: o.bridge, Logger: log,
		LogMaxSize: o.logMaxSize, LogMaxFiles: o.logMaxFiles})
	if err != nil {
		t.Fatal(err)
	}
	// The runtime must outlive the test's context: cleanup still uses it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	n := &testNode{t: t, rt: rt, root: o.root, ns: o.ns, bridge: o.bridge, cidr: o.cidr, cancel: cancel, errc: make(chan error, 1)}
	go func() { n.errc <- rt.Run(ctx) }()
	select {
	case <-rt.Ready():
	case err := <-n.errc:
		t.Fatalf("runtime stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("runtime not ready after 60s")
	}
	t.Cleanup(func() {
		if !o.keep {
			n.removeAll()
			if err := n.rt.removeMasquerade(); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		n.stop(false)
		removeCgroups(o.ns)
	})
	return n
}

// removeCgroups removes the namespace's parent cgroups that runc leaves
// (empty ones only: rmdir fails on a cgroup with processes).
func removeCgroups(ns string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	dirs = append(dirs, "/sys/fs/cgroup/"+ns)
	for _, d := range dirs {
		var sub []string
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- { // children first
			_ = unix.Rmdir(sub[i])
		}
	}
}

// stop stops the Runtime; abrupt kills containerd with SIGKILL, as a
// kill -9 of kiln does through Pdeathsig. Idempotent.
func (n *testNode) stop(abrupt bool) {
	if n.errc == nil {
		return
	}
	if abrupt && n.rt.daemon != nil {
		n.rt.daemon.abrupt.Store(true)
	}
	n.cancel()
	select {
	case err := <-n.errc:
		if err != nil {
			n.t.Errorf("runtime Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		n.t.Errorf("runtime did not stop within 30s")
	}
	n.errc = nil
}

// removeAll removes every container and sandbox of the node.
func (n *testNode) removeAll() {
	if n.errc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(n.t.Context()), time.Minute)
	defer cancel()
	cs, err := n.rt.ListContainers(ctx, runtime.ContainerFilter{})
	if err != nil {
		n.t.Errorf("cleanup: %v", err)
	}
	for _, c := range cs {
		if err := n.rt.RemoveContainer(ctx, c.ID); err != nil {
			n.t.Errorf("cleanup: remove container %s: %v", c.ID, err)
		}
	}
	// Containers not made through the Runtime (ctr run of the benchmarks)
	// go too.
	if c, err := n.rt.getClient(); err == nil {
		others, _ := c.Containers(ctx)
		for _, o := range others {
			if o.ID() == "" || isKilnRecord(ctx, o) {
				continue
			}
			if task, err := o.Task(ctx, nil); err == nil {
				_, _ = task.Delete(ctx, ctrd.WithProcessKill)
			}
			_ = o.Delete(ctx, ctrd.WithSnapshotCleanup)
		}
	}
	sbs, err := n.rt.ListPodSandboxes(ctx, runtime.SandboxFilter{})
	if err != nil {
		n.t.Errorf("cleanup: %v", err)
	}
	for _, sb := range sbs {
		if err := n.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
			n.t.Errorf("cleanup: remove sandbox %s: %v", sb.ID, err)
		}
	}
}

// cleanupHost unmounts whatever is still mounted under root (netns,
// rootfs of a container a failed test left), so the temp dir can go.
func cleanupHost(t testing.TB, root string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], root+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts))) // children first
	for _, m := range mounts {
		t.Logf("cleanup: unmounting leftover %s", m)
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// demoSandbox runs a pod sandbox named name.
func (n *testNode) sandbox(t testing.TB, name string, hostNetwork bool, ports ...runtime.PortMapping) *runtime.Sandbox {
	t.Helper()
	sb, err := n.rt.RunPodSandbox(t.Context(), &runtime.SandboxConfig{
		PodUID:      "uid-" + name,
		Namespace:   "default",
		Name:        name,
		Hostname:    name,
		HostNetwork: hostNetwork,
		Ports:       ports,
		Labels: map[string]string{
			runtime.LabelPodUID:       "uid-" + name,
			runtime.LabelPodName:      name,
			runtime.LabelPodNamespace: "default",
		},
	})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	return sb
}

// run creates and starts a container of the demo image in sb.
func (n *testNode) run(t testing.TB, sb *runtime.Sandbox, cfg runtime.ContainerConfig) string {
	t.Helper()
	id := n.create(t, sb, cfg)
	if err := n.rt.StartContainer(t.Context(), id); err != nil {
		t.Fatalf("StartContainer %s: %v", cfg.Name, err)
	}
	return id
}

func (n *testNode) create(t testing.TB, sb *runtime.Sandbox, cfg runtime.ContainerConfig) string {
	t.Helper()
	if cfg.Image == "" {
		cfg.Image = imagebuild.DemoWebRef
	}
	if cfg.LogPath == "" {
		cfg.LogPath = filepath.Join(n.root, "pods", sb.PodUID, cfg.Name, "0.log")
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{runtime.LabelContainerName: cfg.Name, runtime.LabelPodUID: sb.PodUID}
	}
	id, err := n.rt.CreateContainer(t.Context(), sb.ID, &cfg)
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", cfg.Name, err)
	}
	return id
}

// waitState polls the container until it is in state want.
func (n *testNode) waitState(t testing.TB, id string, want runtime.ContainerState, within time.Duration) *runtime.ContainerStatus {
	t.Helper()
	var st *runtime.ContainerStatus
	eventually(t, within, func() error {
		var err error
		st, err = n.rt.ContainerStatus(t.Context(), id)
		if err != nil {
			return err
		}
		if st.State != want {
			return fmt.Errorf("state %s, want %s", st.State, want)
		}
		return nil
	})
	return st
}

// eventually polls fn every 50ms until it returns nil or within passes.
func eventually(t testing.TB, within time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", within, err)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended: %v", err)
		case <-tick.C:
		}
	}
}

var (
	httpClient = &http.Client{Timeout: 2 * time.Second}
	// pushClient uploads megabytes, under -race, beside other tests.
	pushClient = &http.Client{Timeout: 60 * time.Second}
)

func httpGet(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// freePort returns a TCP port free on the host right now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logEntry is one parsed CRI log line.
type logEntry struct {
	time   time.Time
	stream string
	tag    string
	text   string
}

// readLog parses a CRI log file; a malformed line is an error.
func readLog(path string) ([]logEntry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []logEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, " ", 4)
		if len(parts) < 3 {
			return nil, fmt.Errorf("malformed log line %q", line)
		}
		ts, err := time.Parse(time.RFC3339Nano, parts[0])
		if err != nil {
			return nil, fmt.Errorf("log line %q: %w", line, err)
		}
		if parts[1] != "stdout" && parts[1] != "stderr" || parts[2] != "F" && parts[2] != "P" {
			return nil, fmt.Errorf("malformed log line %q", line)
		}
		e := logEntry{time: ts, stream: parts[1], tag: parts[2]}
		if len(parts) == 4 {
			e.text = parts[3]
		}
		out = append(out, e)
	}
	return out, nil
}

// waitLog polls path until a line of stream contains text.
func waitLog(t testing.TB, path, stream, text string, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		es, err := readLog(path)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.stream == stream && strings.Contains(e.text, text) {
				return nil
			}
		}
		return fmt.Errorf("no %s line with %q in %s (%d lines)", stream, text, path, len(es))
	})
}

func isNotFoundErr(err error) bool { return errors.Is(err, runtime.ErrNotFound) }

func mustClient(t testing.TB, r *Runtime) *ctrd.Client {
	t.Helper()
	c, err := r.getClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pushImage uploads img to the registry at base (http://host:port) as
// repo:tag with the distribution API's monolithic uploads. (go-containerregistry's
// remote package would do it, but pulls docker/cli into the module graph
// for its keychain.)
func pushImage(t testing.TB, base, repo, tag string, img v1.Image) {
	t.Helper()
	put := func(digest string, body io.Reader, size int64) {
		resp, err := pushClient.Post(base+"/v2/"+repo+"/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusAccepted || loc == "" {
			t.Fatalf("start upload: %s", resp.Status)
		}
		if !strings.HasPrefix(loc, "http") {
			loc = base + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, loc+sep+"digest="+digest, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err = pushClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("upload %s: %s", digest, resp.Status)
		}
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		size, _ := l.Size()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		put(d.String(), rc, size)
		rc.Close()
	}
	cfgName, _ := img.ConfigName()
	rawCfg, _ := img.RawConfigFile()
	put(cfgName.String(), bytes.NewReader(rawCfg), int64(len(rawCfg)))
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", string(mt))
	resp, err := pushClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("put manifest: %s", resp.Status)
	}
}

func isKilnRecord(ctx context.Context, c ctrd.Container) bool {
	labels, err := c.Labels(ctx)
	return err != nil || labels[labelKind] != ""
}

// Credentials of privateRegistry.
const (
	registryUser     = "puller"
	registryPassword = "s3cret-pull"
)

// privateRegistry serves one loopback registry twice: open, to push to,
// and behind Basic authentication (registryUser, registryPassword), to
// pull from, as a private registry answers. It returns both base URLs.
func privateRegistry(t testing.TB) (open, private string) {
	t.Helper()
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	o := httptest.NewServer(h)
	t.Cleanup(o.Close)
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != registryUser || pw != registryPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return o.URL, p.URL
}
