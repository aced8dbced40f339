package simulated

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                     "docker.io/library/busybox:latest",
		"busybox:1.36":                "docker.io/library/busybox:1.36",
		"user/app":                    "docker.io/user/app:latest",
		"example.com/app:v1":          "example.com/app:v1",
		"localhost:5000/app":          "localhost:5000/app:latest",
		"localhost/app":               "localhost/app:latest",
		"example.com/app@sha256:abcd": "example.com/app@sha256:abcd",
	} {
		if got := normalize(in); got != want {
			t.Errorf("normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

func waitState(t *testing.T, r *Runtime, id string, want runtime.ContainerState) *runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := r.ContainerStatus(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == want {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %s, want %s", id, s.State, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRuntime_lifecycle(t *testing.T) {
	ctx := t.Context()
	r := New(Config{})
	if st, _ := r.Status(ctx); st.NetworkReady {
		t.Fatal("network ready without a pod CIDR")
	}
	if _, err := r.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "u0"}); err == nil {
		t.Fatal("sandbox without a pod CIDR")
	}
	if err := r.SetPodCIDR(ctx, "10.42.3.0/30"); err != nil {
		t.Fatal(err)
	}
	sb, err := r.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "u1", Annotations: map[string]string{
		AnnotationExitCode + ".job":    "3",
		AnnotationRunDuration + ".job": "50ms",
		AnnotationLog:                  "hello\nworld",
		AnnotationStopDelay + ".slow":  "1h",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sb.IP != "10.42.3.2" {
		t.Errorf("first address %s, want 10.42.3.2 (after the gateway)", sb.IP)
	}
	if _, err := r.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "u2"}); err == nil {
		t.Error("a /30 held two pod addresses")
	}
	hostNet, err := r.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "u3", HostNetwork: true})
	if err != nil || hostNet.IP != DefaultNodeIP {
		t.Errorf("host network sandbox %+v, %v", hostNet, err)
	}

	dir := t.TempDir()
	if _, err := r.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{Name: "job", Image: "busybox"}); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("create with an image never pulled: %v", err)
	}
	if _, err := r.PullImage(ctx, "busybox", nil); err != nil {
		t.Fatal(err)
	}
	job, err := r.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{Name: "job", Image: "busybox", LogPath: filepath.Join(dir, "job.log")})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, job); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, r, job, runtime.ContainerExited)
	if s.ExitCode != 3 || s.Reason != "Error" || s.FinishedAt.Sub(s.StartedAt) < 50*time.Millisecond {
		t.Errorf("job exited %+v", s)
	}
	log, err := os.ReadFile(filepath.Join(dir, "job.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 4 || !strings.HasSuffix(lines[1], " stdout F hello") || !strings.Contains(lines[3], " stderr F sim: job exited with code 3") {
		t.Errorf("log:\n%s", log)
	}

	// A container slower to stop than its timeout is killed at the
	// timeout.
	slow, err := r.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{Name: "slow", Image: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.StartContainer(ctx, slow); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.StopContainer(ctx, slow, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("stop returned after %v, before the timeout", d)
	}
	if s := waitState(t, r, slow, runtime.ContainerExited); s.ExitCode != 137 {
		t.Errorf("killed container exit code %d", s.ExitCode)
	}
	if calls := r.StopCalls("u1"); len(calls) != 1 || calls[0].Timeout != 100*time.Millisecond {
		t.Errorf("stop calls %+v", calls)
	}

	// Stopping the sandbox frees its address.
	if err := r.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if sbs, cs := r.Counts(); sbs != 1 || cs != 0 {
		t.Errorf("after removal: %d sandboxes, %d containers", sbs, cs)
	}
	if again, err := r.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "u4"}); err != nil || again.IP != "10.42.3.2" {
		t.Errorf("address not reused: %+v %v", again, err)
	}
}

func TestRuntime_knobErrors(t *testing.T) {
	ctx := t.Context()
	r := New(Config{SandboxIP: "127.0.0.1", Images: []string{"busybox"}})
	sb, err := r.RunPodSandbox(ctx, &runtime.SandboxConfig{PodUID: "u", Annotations: map[string]string{
		AnnotationRunDuration: "soon",
		AnnotationPullError:   "example.com/gone:v1, other",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateContainer(ctx, sb.ID, &runtime.ContainerConfig{Name: "c", Image: "busybox"}); err == nil || !strings.Contains(err.Error(), AnnotationRunDuration) {
		t.Errorf("bad duration: %v", err)
	}
	if _, err := r.PullImage(ctx, "example.com/gone:v1", nil); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("pull of a failing ref: %v", err)
	}
	if _, err := r.PullImage(ctx, "docker.io/library/other:latest", nil); err == nil {
		t.Error("the failing ref was not normalized")
	}
	if _, err := r.ImageStatus(ctx, "docker.io/library/busybox:latest"); err != nil {
		t.Errorf("preloaded image: %v", err)
	}
}
