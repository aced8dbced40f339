package containerd

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiln.dev/kiln/components/internal/imagebuild"
	"kiln.dev/kiln/components/kubelet/runtime"
)

// childEnv makes TestHelperKilnProcess act as a kiln: the JSON of a
// childSpec.
const childEnv = "KILN_CONTAINERD_TEST_CHILD"

type childSpec struct {
	Root, Namespace, Bridge, CIDR string
	// Out receives the childResult once the pod serves.
	Out string
}

type childResult struct {
	SandboxIP, ContainerID string
}

// TestRuntime_KillNine runs the runtime in a child process, as kiln would,
// starts a pod there and kill -9s the child: its containerd dies with it
// (Pdeathsig), the container keeps serving (its shim is nobody's child),
// and a new runtime on the same root adopts the same container, running.
func TestRuntime_KillNine(t *testing.T) {
	requireHost(t)
	root := t.TempDir()
	t.Cleanup(func() { cleanupHost(t, root) })
	archive := demoArchive(t)
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "images", "demo-web.tar"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	suffix := newID()[:6]
	spec := childSpec{Root: root, Namespace: "kiln-test-" + suffix, Bridge: "kt" + suffix, CIDR: fmt.Sprintf("10.%d.%d.0/24", 200+int(suffix[0])%50, int(suffix[1])), Out: filepath.Join(t.TempDir(), "result.json")}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", spec.Bridge).Run() })
	js, _ := json.Marshal(spec)
	child := exec.Command(os.Args[0], "-test.run=^TestHelperKilnProcess$", "-test.v")
	child.Env = append(os.Environ(), childEnv+"="+string(js))
	child.Stdout, child.Stderr = t.Output(), t.Output()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childDone := make(chan struct{})
	go func() { child.Wait(); close(childDone) }()
	t.Cleanup(func() { child.Process.Kill(); <-childDone })

	var res childResult
	eventually(t, 90*time.Second, func() error {
		b, err := os.ReadFile(spec.Out)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &res)
	})
	b, err = os.ReadFile(filepath.Join(root, "containerd", "containerd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	ctrdPID, _ := strconv.Atoi(strings.TrimSpace(string(b)))

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-childDone
	eventually(t, 10*time.Second, func() error {
		if alive(ctrdPID) {
			return fmt.Errorf("containerd %d outlived its kiln", ctrdPID)
		}
		return nil
	})
	if body, err := httpGet("http://" + res.SandboxIP + ":8080/"); err != nil || !strings.Contains(body, "from web") {
		t.Fatalf("pod after kill -9 of kiln: %q, %v", body, err)
	}

	n := startNode(t, nodeOptions{root: root, ns: spec.Namespace, bridge: spec.Bridge, cidr: spec.CIDR})
	st, err := n.rt.ContainerStatus(t.Context(), res.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != runtime.ContainerRunning {
		t.Fatalf("adopted container is %s", st.State)
	}
	if _, err := httpGet("http://" + res.SandboxIP + ":8080/"); err != nil {
		t.Fatal(err)
	}
	waitLog(t, st.LogPath, "stdout", "GET / from", 10*time.Second)
	if n := countLog(t, st.LogPath, "GET / from"); n < 2 {
		t.Fatalf("%d request lines in the log, want 2", n)
	}
}

// TestHelperKilnProcess is the child of TestRuntime_KillNine; it does
// nothing in a normal run.
func TestHelperKilnProcess(t *testing.T) {
	js := os.Getenv(childEnv)
	if js == "" {
		return
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rt, err := New(Config{RootDir: spec.Root, Namespace: spec.Namespace, BridgeName: spec.Bridge, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- rt.Run(t.Context()) }()
	select {
	case <-rt.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := rt.SetPodCIDR(ctx, spec.CIDR); err != nil {
		t.Fatal(err)
	}
	sb, err := rt.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "uid-web", Namespace: "default", Name: "web", Hostname: "web"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := rt.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{Name: "web", Image: imagebuild.DemoWebRef, LogPath: filepath.Join(spec.Root, "pods", "uid-web", "web", "0.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		_, err := httpGet("http://" + sb.IP + ":8080/")
		return err
	})
	out, _ := json.Marshal(childResult{SandboxIP: sb.IP, ContainerID: id})
	if err := writeFileAtomic(spec.Out, out); err != nil {
		t.Fatal(err)
	}
	<-errc // until the parent kills this process
}
