package containerd

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/sys/unix"

	"kiln.dev/kiln/components/internal/imagebuild"
	"kiln.dev/kiln/components/kubelet/runtime"
)

// TestRuntime_Conformance drives the Runtime interface the way the
// kubelet does, against real containerd, runc and CNI, with the demo
// image. The subtests share one node and run in order.
func TestRuntime_Conformance(t *testing.T) {
	n := startNode(t, nodeOptions{})
	var rt runtime.Runtime = n.rt

	t.Run("VersionAndStatus", func(t *testing.T) {
		name, version, err := rt.Version(t.Context())
		if err != nil || name != "containerd" || version == "" {
			t.Fatalf("Version = %q, %q, %v", name, version, err)
		}
		st, err := rt.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !st.RuntimeReady || st.NetworkReady || !strings.Contains(st.Reason, "no pod CIDR") {
			t.Fatalf("Status before SetPodCIDR = %+v", st)
		}
		_, err = rt.RunPodSandbox(t.Context(), &runtime.SandboxConfig{PodUID: "u", Namespace: "default", Name: "early"})
		if !errors.Is(err, ErrNoPodCIDR) {
			t.Fatalf("RunPodSandbox before SetPodCIDR: %v, want ErrNoPodCIDR", err)
		}
		if err := rt.SetPodCIDR(t.Context(), n.cidr); err != nil {
			t.Fatal(err)
		}
		if st, _ := rt.Status(t.Context()); !st.RuntimeReady || !st.NetworkReady {
			t.Fatalf("Status after SetPodCIDR = %+v", st)
		}
		if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(b)) != "1" {
			t.Fatalf("ip_forward = %q, %v", b, err)
		}
		// Pods of other nodes (the cluster CIDR) see pod IPs, not the
		// node's: only traffic leaving the cluster is masqueraded.
		out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", n.rt.masqChain()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-d "+n.rt.cfg.ClusterCIDR+" -j RETURN") {
			t.Fatalf("masquerade chain without a RETURN for the cluster CIDR %s: %v\n%s", n.rt.cfg.ClusterCIDR, err, out)
		}
	})

	t.Run("ImageStatus", func(t *testing.T) {
		img, err := rt.ImageStatus(t.Context(), imagebuild.DemoWebRef)
		if err != nil {
			t.Fatal(err)
		}
		cfgName, _ := demoImg.ConfigName()
		if img.ID != cfgName.String() || img.Ref != imagebuild.DemoWebRef || !strings.HasPrefix(img.RepoDigest, "kiln.dev/demo-web@sha256:") || img.Size <= 0 {
			t.Fatalf("ImageStatus = %+v, config %s", img, cfgName)
		}
		byID, err := rt.ImageStatus(t.Context(), img.ID)
		if err != nil || byID.ID != img.ID {
			t.Fatalf("ImageStatus by ID = %+v, %v", byID, err)
		}
		_, err = rt.ImageStatus(t.Context(), "busybox")
		if !isNotFoundErr(err) || err.Error() != `image "busybox" not found` {
			t.Fatalf("ImageStatus(busybox) = %v", err)
		}
	})

	t.Run("PullMissingImage", func(t *testing.T) {
		_, err := rt.PullImage(t.Context(), "kiln.dev/nope:1", nil)
		if !isNotFoundErr(err) || !strings.Contains(err.Error(), `image "kiln.dev/nope:1" not found`) {
			t.Fatalf("PullImage(kiln.dev/nope:1) = %v", err)
		}
		t.Logf("error: %v", err)
	})

	t.Run("PullFromLoopbackRegistry", func(t *testing.T) {
		reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		t.Cleanup(reg.Close)
		host := strings.TrimPrefix(reg.URL, "http://")
		ref := host + "/demo/web:1"
		pushImage(t, reg.URL, "demo/web", "1", demoImg)
		_, err := rt.ImageStatus(t.Context(), ref)
		if !isNotFoundErr(err) {
			t.Fatalf("ImageStatus before pull: %v", err)
		}
		img, err := rt.PullImage(t.Context(), ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfgName, _ := demoImg.ConfigName()
		if img.Ref != ref || img.ID != cfgName.String() || !strings.HasPrefix(img.RepoDigest, host+"/demo/web@sha256:") {
			t.Fatalf("PullImage = %+v", img)
		}
		if _, err := rt.ImageStatus(t.Context(), ref); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("PullWithCredentials", func(t *testing.T) {
		open, private := privateRegistry(t)
		pushImage(t, open, "kiln/private", "1", demoImg)
		host := strings.TrimPrefix(private, "http://")
		ref := host + "/kiln/private:1"
		if _, err := rt.PullImage(t.Context(), ref, nil); err == nil || !strings.Contains(err.Error(), "authorization") {
			t.Fatalf("anonymous pull from the private registry: %v, want unauthorized", err)
		}
		wrong := []runtime.RegistryCredential{{Host: host, Username: registryUser, Password: "wrong"}}
		if _, err := rt.PullImage(t.Context(), ref, wrong); err == nil {
			t.Fatal("a pull with a wrong password succeeded")
		}
		other := []runtime.RegistryCredential{{Host: "other.example.com", Username: registryUser, Password: registryPassword}}
		if _, err := rt.PullImage(t.Context(), ref, other); err == nil {
			t.Fatal("credentials of another registry were sent")
		}
		right := []runtime.RegistryCredential{{Host: host, Username: registryUser, Password: registryPassword}}
		if _, err := rt.PullImage(t.Context(), ref, right); err != nil {
			t.Fatalf("pull with the registry's credentials: %v", err)
		}
	})

	t.Run("ImportAddedArchive", func(t *testing.T) {
		const ref = "kiln.dev/added:2"
		if err := imagebuild.WriteFile(filepath.Join(n.root, "images", "added.tar"), ref, demoImg, imagebuild.Docker); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, func() error {
			_, err := rt.ImageStatus(t.Context(), ref)
			return err
		})
	})

	hostPort := freePort(t)
	sb := n.sandbox(t, "web", false, runtime.PortMapping{Protocol: "TCP", ContainerPort: 8080, HostPort: int32(hostPort)})
	var webID string
	webLog := filepath.Join(n.root, "pods", sb.PodUID, "web", "0.log")

	t.Run("Sandbox", func(t *testing.T) {
		_, cidr, _ := net.ParseCIDR(n.cidr)
		if ip := net.ParseIP(sb.IP); ip == nil || !cidr.Contains(ip) {
			t.Fatalf("sandbox IP %q not in %s", sb.IP, n.cidr)
		}
		if sb.State != runtime.SandboxReady || sb.PodUID != "uid-web" || sb.Name != "web" || sb.Namespace != "default" {
			t.Fatalf("sandbox = %+v", sb)
		}
		sbs, err := rt.ListPodSandboxes(t.Context(), runtime.SandboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(sbs, func(s *runtime.Sandbox) bool { return s.ID == sb.ID })
		if i < 0 || sbs[i].IP != sb.IP || sbs[i].Labels[runtime.LabelPodName] != "web" || len(sbs[i].Labels) != 3 {
			t.Fatalf("ListPodSandboxes = %+v", sbs)
		}
		// The kubelet's look at one pod: that pod's sandboxes only.
		other := n.sandbox(t, "other", true)
		for uid, want := range map[string]string{"uid-web": sb.ID, "uid-other": other.ID} {
			got, err := rt.ListPodSandboxes(t.Context(), runtime.SandboxFilter{PodUID: uid})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != want {
				t.Fatalf("ListPodSandboxes(pod %s) = %+v, want only %s", uid, got, want)
			}
		}
		if err := rt.RemovePodSandbox(t.Context(), other.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ServeHTTP", func(t *testing.T) {
		webID = n.run(t, sb, runtime.ContainerConfig{
			Name:        "web",
			Env:         []runtime.KeyValue{{Key: "GREETING", Value: "hi from kiln"}},
			Annotations: map[string]string{runtime.AnnotationContainerHash: "abc"},
		})
		var body string
		eventually(t, 20*time.Second, func() (err error) {
			body, err = httpGet("http://" + sb.IP + ":8080/")
			return err
		})
		if want := "hi from kiln from web (request 1)\n"; body != want {
			t.Fatalf("GET / = %q, want %q", body, want)
		}
		waitLog(t, webLog, "stdout", "listening on [::]:8080 as web", 10*time.Second)
		waitLog(t, webLog, "stdout", "GET / from", 10*time.Second)
		st, err := rt.ContainerStatus(t.Context(), webID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtime.ContainerRunning || st.StartedAt.IsZero() || st.Name != "web" || st.SandboxID != sb.ID || st.PodUID != "uid-web" ||
			st.Image != imagebuild.DemoWebRef || !strings.HasPrefix(st.ImageID, "kiln.dev/demo-web@sha256:") || st.LogPath != webLog ||
			st.Annotations[runtime.AnnotationContainerHash] != "abc" || st.Labels[runtime.LabelContainerName] != "web" {
			t.Fatalf("ContainerStatus = %+v", st)
		}
	})

	t.Run("StateOnTmpfs", func(t *testing.T) {
		// kiln's containerd keeps bundles and runc's state in memory.
		if fs := fsType(t, n.rt.p.state); fs != unix.TMPFS_MAGIC {
			t.Fatalf("containerd state %s is on filesystem %#x, want tmpfs", n.rt.p.state, fs)
		}
		for _, p := range []string{
			filepath.Join(n.rt.p.state, taskBundles, n.rt.Namespace(), webID, "config.json"),
			filepath.Join(n.rt.p.state, "runc", n.rt.Namespace(), webID, "state.json"),
		} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("running container's state: %v", err)
			}
		}
	})

	t.Run("HostPort", func(t *testing.T) {
		for _, host := range []string{n.rt.nodeIP(), "127.0.0.1"} {
			url := fmt.Sprintf("http://%s:%d/", host, hostPort)
			eventually(t, 10*time.Second, func() error {
				body, err := httpGet(url)
				if err == nil && !strings.Contains(body, "from web") {
					err = fmt.Errorf("GET %s = %q", url, body)
				}
				return err
			})
		}
	})

	t.Run("ExecSync", func(t *testing.T) {
		stdout, stderr, code, err := rt.ExecSync(t.Context(), webID, []string{"/demo-web", "check"}, 5*time.Second)
		if err != nil || code != 0 || strings.TrimSpace(string(stdout)) != "200 OK" || len(stderr) != 0 {
			t.Fatalf("check = %q, %q, %d, %v", stdout, stderr, code, err)
		}
		stdout, stderr, code, err = rt.ExecSync(t.Context(), webID, []string{"/demo-web", "exit", "3"}, 5*time.Second)
		if err != nil || code != 3 || string(stdout) != "exiting with 3\n" || string(stderr) != "this line goes to stderr\n" {
			t.Fatalf("exit 3 = %q, %q, %d, %v", stdout, stderr, code, err)
		}
		start := time.Now()
		_, _, _, err = rt.ExecSync(t.Context(), webID, []string{"/demo-web", "sleep", "30"}, 300*time.Millisecond)
		if !errors.Is(err, ErrExecTimeout) || time.Since(start) > 10*time.Second {
			t.Fatalf("sleep past timeout = %v after %s", err, time.Since(start))
		}
		_, _, _, err = rt.ExecSync(t.Context(), webID, []string{"/no-such-binary"}, 5*time.Second)
		if err == nil {
			t.Fatal("exec of a missing binary succeeded")
		}
		_, _, _, err = rt.ExecSync(t.Context(), "nope", []string{"/demo-web", "check"}, time.Second)
		if !isNotFoundErr(err) {
			t.Fatalf("exec in missing container = %v", err)
		}
	})

	t.Run("ExitCodes", func(t *testing.T) {
		failID := n.run(t, sb, runtime.ContainerConfig{Name: "fail", Args: []string{"exit", "3"}})
		okID := n.run(t, sb, runtime.ContainerConfig{Name: "ok", Command: []string{"/demo-web", "exit"}, Args: []string{"0"}})
		st := n.waitState(t, failID, runtime.ContainerExited, 20*time.Second)
		if st.ExitCode != 3 || st.Reason != "Error" || st.FinishedAt.Before(st.StartedAt) || st.StartedAt.IsZero() {
			t.Fatalf("exit 3 status = %+v", st)
		}
		st = n.waitState(t, okID, runtime.ContainerExited, 20*time.Second)
		if st.ExitCode != 0 || st.Reason != "Completed" {
			t.Fatalf("exit 0 status = %+v", st)
		}
		failLog := filepath.Join(n.root, "pods", sb.PodUID, "fail", "0.log")
		waitLog(t, failLog, "stdout", "exiting with 3", 5*time.Second)
		waitLog(t, failLog, "stderr", "this line goes to stderr", 5*time.Second)
		es, _ := readLog(failLog)
		for _, e := range es {
			if e.tag != "F" {
				t.Fatalf("log entry %+v not F", e)
			}
		}
		// The exit is recorded and the task (and its shim) gone.
		eventually(t, 10*time.Second, func() error {
			if p, err := getTask(t.Context(), mustClient(t, n.rt), failID); err != nil || p != nil {
				return fmt.Errorf("task still there: %v %v", p, err)
			}
			return nil
		})
		if err := rt.StopContainer(t.Context(), failID, time.Second); err != nil {
			t.Fatalf("stop of an exited container: %v", err)
		}
		if err := rt.StartContainer(t.Context(), failID); err == nil {
			t.Fatal("a container started twice")
		}
	})

	t.Run("EnvUserWorkdirMounts", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "x"), []byte("mounted\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		uid, gid := int64(1000), int64(2000)
		mount := []runtime.Mount{{ContainerPath: "/data", HostPath: dir, ReadOnly: true}}
		idID := n.run(t, sb, runtime.ContainerConfig{Name: "id", Args: []string{"id"}, RunAsUser: &uid, RunAsGroup: &gid, WorkingDir: "/data", Mounts: mount})
		catID := n.run(t, sb, runtime.ContainerConfig{Name: "cat", Args: []string{"cat", "/data/x"}, Mounts: mount})
		envID := n.run(t, sb, runtime.ContainerConfig{Name: "env", Args: []string{"env"}, Env: []runtime.KeyValue{{Key: "FOO", Value: "bar"}, {Key: "PATH", Value: "/bin"}}})
		roID := n.run(t, sb, runtime.ContainerConfig{Name: "ro", Args: []string{"write", "/data/y", "nope"}, Mounts: mount})
		for _, id := range []string{idID, catID, envID} {
			if st := n.waitState(t, id, runtime.ContainerExited, 20*time.Second); st.ExitCode != 0 {
				t.Fatalf("%s exited %d", st.Name, st.ExitCode)
			}
		}
		if st := n.waitState(t, roID, runtime.ContainerExited, 20*time.Second); st.ExitCode != 1 {
			t.Fatalf("write to a read-only mount exited %d", st.ExitCode)
		}
		logOf := func(name string) string { return filepath.Join(n.root, "pods", sb.PodUID, name, "0.log") }
		waitLog(t, logOf("id"), "stdout", "uid=1000 gid=2000 cwd=/data hostname=web", 5*time.Second)
		waitLog(t, logOf("cat"), "stdout", "mounted", 5*time.Second)
		waitLog(t, logOf("env"), "stdout", "FOO=bar", 5*time.Second)
		waitLog(t, logOf("env"), "stdout", "HOSTNAME=web", 5*time.Second)
		waitLog(t, logOf("env"), "stdout", "PATH=/bin", 5*time.Second)
		waitLog(t, logOf("ro"), "stderr", "read-only file system", 5*time.Second)
	})

	t.Run("OOMKilled", func(t *testing.T) {
		id := n.run(t, sb, runtime.ContainerConfig{Name: "oom", Args: []string{"alloc", "256"}, Resources: runtime.Resources{MemoryLimit: 48 << 20, CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000}})
		st := n.waitState(t, id, runtime.ContainerExited, 30*time.Second)
		if st.Reason != "OOMKilled" || st.ExitCode != 137 {
			t.Fatalf("status = %+v, want OOMKilled 137", st)
		}
	})

	t.Run("StopSendsSIGTERMFirst", func(t *testing.T) {
		start := time.Now()
		if err := rt.StopContainer(t.Context(), webID, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("stop took %s; SIGTERM should have ended it", took)
		}
		st, err := rt.ContainerStatus(t.Context(), webID)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != runtime.ContainerExited || st.ExitCode != 0 || st.Reason != "Completed" {
			t.Fatalf("status after stop = %+v", st)
		}
		waitLog(t, webLog, "stdout", "shutting down", 5*time.Second)
		if err := rt.StopContainer(t.Context(), webID, time.Second); err != nil {
			t.Fatalf("second stop: %v", err)
		}
	})

	t.Run("StopKillsAfterTimeout", func(t *testing.T) {
		id := n.run(t, sb, runtime.ContainerConfig{Name: "hang", Args: []string{"hang"}})
		waitLog(t, filepath.Join(n.root, "pods", sb.PodUID, "hang", "0.log"), "stdout", "ignoring SIGTERM", 20*time.Second)
		start := time.Now()
		if err := rt.StopContainer(t.Context(), id, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 500*time.Millisecond || took > 10*time.Second {
			t.Fatalf("stop took %s", took)
		}
		st, _ := rt.ContainerStatus(t.Context(), id)
		if st.ExitCode != 137 || st.Reason != "Error" {
			t.Fatalf("status = %+v, want 137 Error", st)
		}
	})

	t.Run("ListAndRemove", func(t *testing.T) {
		all, err := rt.ListContainers(t.Context(), runtime.ContainerFilter{SandboxID: sb.ID})
		if err != nil {
			t.Fatal(err)
		}
		byPod, err := rt.ListContainers(t.Context(), runtime.ContainerFilter{PodUID: sb.PodUID})
		if err != nil {
			t.Fatal(err)
		}
		none, err := rt.ListContainers(t.Context(), runtime.ContainerFilter{PodUID: "other"})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 9 || len(byPod) != 9 || len(none) != 0 {
			t.Fatalf("ListContainers: %d by sandbox, %d by pod, %d of another pod; want 9, 9, 0", len(all), len(byPod), len(none))
		}
		for _, c := range all {
			if c.State != runtime.ContainerExited {
				t.Fatalf("%s is %s", c.Name, c.State)
			}
			if err := rt.RemoveContainer(t.Context(), c.ID); err != nil {
				t.Fatal(err)
			}
			if err := rt.RemoveContainer(t.Context(), c.ID); err != nil {
				t.Fatalf("second remove: %v", err)
			}
			if _, err := rt.ContainerStatus(t.Context(), c.ID); !isNotFoundErr(err) {
				t.Fatalf("status of removed container: %v", err)
			}
		}
	})

	t.Run("StopAndRemoveSandbox", func(t *testing.T) {
		created := n.create(t, sb, runtime.ContainerConfig{Name: "never-started"})
		if st, err := rt.ContainerStatus(t.Context(), created); err != nil || st.State != runtime.ContainerCreated {
			t.Fatalf("created container = %+v, %v", st, err)
		}
		if err := rt.StopPodSandbox(t.Context(), sb.ID); err != nil {
			t.Fatal(err)
		}
		if err := rt.StopPodSandbox(t.Context(), sb.ID); err != nil {
			t.Fatalf("second stop: %v", err)
		}
		sbs, _ := rt.ListPodSandboxes(t.Context(), runtime.SandboxFilter{})
		i := slices.IndexFunc(sbs, func(s *runtime.Sandbox) bool { return s.ID == sb.ID })
		if i < 0 || sbs[i].State != runtime.SandboxNotReady {
			t.Fatalf("after stop: %+v", sbs)
		}
		if _, err := os.Stat(filepath.Join(n.rt.p.netns, sb.ID)); !os.IsNotExist(err) {
			t.Fatalf("netns still there: %v", err)
		}
		// host-local released the IP.
		if _, err := os.Stat(filepath.Join(n.rt.p.cniData, n.rt.netName(), sb.IP)); !os.IsNotExist(err) {
			t.Fatalf("IP %s still allocated: %v", sb.IP, err)
		}
		if err := rt.RemovePodSandbox(t.Context(), sb.ID); err != nil {
			t.Fatal(err)
		}
		if err := rt.RemovePodSandbox(t.Context(), sb.ID); err != nil {
			t.Fatalf("second remove: %v", err)
		}
		if _, err := rt.ContainerStatus(t.Context(), created); !isNotFoundErr(err) {
			t.Fatalf("container of removed sandbox: %v", err)
		}
		sbs, _ = rt.ListPodSandboxes(t.Context(), runtime.SandboxFilter{})
		if slices.ContainsFunc(sbs, func(s *runtime.Sandbox) bool { return s.ID == sb.ID }) {
			t.Fatal("removed sandbox still listed")
		}
	})

	t.Run("HostNetwork", func(t *testing.T) {
		hsb := n.sandbox(t, "host", true)
		if hsb.IP != n.rt.nodeIP() {
			t.Fatalf("host-network sandbox IP %q, want node IP %q", hsb.IP, n.rt.nodeIP())
		}
		port := freePort(t)
		id := n.run(t, hsb, runtime.ContainerConfig{Name: "hostweb", Args: []string{"serve", "-addr", fmt.Sprintf("127.0.0.1:%d", port)}})
		eventually(t, 20*time.Second, func() error {
			_, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
			return err
		})
		if err := rt.StopContainer(t.Context(), id, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := rt.RemovePodSandbox(t.Context(), hsb.ID); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRuntime_logRotation: a container that writes past the log size
// limit leaves at most LogMaxFiles files of at most LogMaxSize each; the
// files hold, oldest first, an unbroken run of its last lines, each
// whole.
func TestRuntime_logRotation(t *testing.T) {
	const maxSize, maxFiles = 2048, 3
	n := startNode(t, nodeOptions{logMaxSize: maxSize, logMaxFiles: maxFiles})
	sb := n.sandbox(t, "chatty", true)
	// demo-web env prints the environment sorted: the CHATTER lines in
	// order, ZZZ_LAST last.
	env := []runtime.KeyValue{{Key: "ZZZ_LAST", Value: "end"}}
	for i := range 200 {
		env = append(env, runtime.KeyValue{Key: fmt.Sprintf("CHATTER_%03d", i), Value: strings.Repeat("x", 40)})
	}
	id := n.run(t, sb, runtime.ContainerConfig{Name: "chatty", Command: []string{"/demo-web", "env"}, Env: env})
	if st := n.waitState(t, id, runtime.ContainerExited, 20*time.Second); st.ExitCode != 0 {
		t.Fatalf("chatty exited %d", st.ExitCode)
	}
	// The task's exit can show before the relay has written the last of
	// its output (and made its last rotation).
	n.rt.drainRelay(id, 10*time.Second)
	texts := readRotated(t, filepath.Join(n.root, "pods", sb.PodUID, "chatty", "0.log"), maxSize, maxFiles)
	if texts[len(texts)-1] != "ZZZ_LAST=end" {
		t.Fatalf("the newest file ends with %q, want the last line", texts[len(texts)-1])
	}
	prev := -1
	for _, text := range texts {
		var i int
		if _, err := fmt.Sscanf(text, "CHATTER_%d=", &i); err != nil {
			continue
		}
		if prev >= 0 && i != prev+1 {
			t.Fatalf("CHATTER_%03d follows CHATTER_%03d: lines lost between the kept files", i, prev)
		}
		prev = i
	}
	if prev != 199 {
		t.Fatalf("the last CHATTER line kept is %d, want 199", prev)
	}
}
