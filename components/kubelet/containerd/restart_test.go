package containerd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// TestRuntime_Restart_adoptsRunningContainers kills kiln's side abruptly
// (containerd SIGKILLed, as Pdeathsig does on kill -9 of kiln), lets the
// containers run on alone, and starts a new Runtime on the same root: the
// same containers are listed running, not restarted, their logs continue,
// and an exit that happened meanwhile is recorded. Then containerd alone
// is killed under the running Runtime, which restarts it and keeps
// following exits.
func TestRuntime_Restart_adoptsRunningContainers(t *testing.T) {
	a := startNode(t, nodeOptions{keep: true})
	if err := a.rt.SetPodCIDR(t.Context(), a.cidr); err != nil {
		t.Fatal(err)
	}
	sb := a.sandbox(t, "web", false)
	webID := a.run(t, sb, runtime.ContainerConfig{Name: "web"})
	web2ID := a.run(t, sb, runtime.ContainerConfig{Name: "web2", Args: []string{"serve", "-addr", ":8081"}})
	sleeperID := a.run(t, sb, runtime.ContainerConfig{Name: "sleeper", Args: []string{"sleep", "1.5"}})
	for _, port := range []string{"8080", "8081"} {
		eventually(t, 20*time.Second, func() error {
			_, err := httpGet("http://" + sb.IP + ":" + port + "/")
			return err
		})
	}
	before, err := a.rt.ListContainers(t.Context(), runtime.ContainerFilter{})
	if err != nil {
		t.Fatal(err)
	}
	webLog := filepath.Join(a.root, "pods", sb.PodUID, "web", "0.log")
	waitLog(t, webLog, "stdout", "GET / from", 10*time.Second)

	a.stop(true)

	// kiln is down: the containers serve on; what they print waits in the
	// FIFOs' pipes.
	if body, err := httpGet("http://" + sb.IP + ":8080/"); err != nil || !strings.Contains(body, "(request 2)") {
		t.Fatalf("while kiln is down: %q, %v", body, err)
	}
	eventually(t, 20*time.Second, func() error {
		if pids := processesWithArgs("sleep", "1.5"); len(pids) > 0 {
			return fmt.Errorf("sleeper still running: %v", pids)
		}
		return nil
	})

	// A containerd that outlived its kiln (Pdeathsig missed) is killed by
	// the next one, which could not share the root with it.
	rogue := exec.Command("containerd", "--config", a.rt.p.config)
	if err := rogue.Start(); err != nil {
		t.Fatal(err)
	}
	go rogue.Wait()
	if err := os.WriteFile(a.rt.p.pidFile, []byte(strconv.Itoa(rogue.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}

	b := startNode(t, nodeOptions{root: a.root, ns: a.ns, bridge: a.bridge, cidr: a.cidr})
	if alive(rogue.Process.Pid) {
		t.Fatal("the stale containerd is still alive")
	}
	after, err := b.rt.ListContainers(t.Context(), runtime.ContainerFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("%d containers before the restart, %d after", len(before), len(after))
	}
	for _, c := range before {
		i := slices.IndexFunc(after, func(d *runtime.ContainerStatus) bool { return d.ID == c.ID })
		if i < 0 {
			t.Fatalf("container %s (%s) is gone after the restart", c.ID, c.Name)
		}
		d := after[i]
		switch c.ID {
		case webID, web2ID:
			if d.State != runtime.ContainerRunning || !d.StartedAt.Equal(c.StartedAt) {
				t.Fatalf("%s after restart: %s started %s, before: started %s", d.Name, d.State, d.StartedAt, c.StartedAt)
			}
		case sleeperID:
			if d.State != runtime.ContainerExited || d.ExitCode != 0 || d.Reason != "Completed" {
				t.Fatalf("sleeper after restart = %+v", d)
			}
		}
	}
	sbs, err := b.rt.ListPodSandboxes(t.Context(), runtime.SandboxFilter{})
	if err != nil || len(sbs) != 1 || sbs[0].ID != sb.ID || sbs[0].State != runtime.SandboxReady || sbs[0].IP != sb.IP {
		t.Fatalf("sandboxes after restart = %+v, %v", sbs, err)
	}

	// The request made while kiln was down reached the log, and new ones
	// follow.
	if _, err := httpGet("http://" + sb.IP + ":8080/"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if n := countLog(t, webLog, "GET / from"); n < 3 {
			return fmt.Errorf("%d request lines in the log, want 3", n)
		}
		return nil
	})

	// containerd dies under a running Runtime: it is restarted, the
	// containers keep running, and exits are still followed.
	pid := b.rt.daemon.currentPID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		if p := b.rt.daemon.currentPID(); p == 0 || p == pid {
			return fmt.Errorf("containerd not restarted yet")
		}
		st, err := b.rt.ContainerStatus(t.Context(), webID)
		if err != nil {
			return err
		}
		if st.State != runtime.ContainerRunning {
			return fmt.Errorf("web is %s", st.State)
		}
		return nil
	})
	exitID := b.run(t, sb, runtime.ContainerConfig{Name: "exit4", Args: []string{"exit", "4"}})
	eventually(t, 20*time.Second, func() error {
		// The exit event was handled: exit recorded, task deleted.
		st, err := b.rt.ContainerStatus(t.Context(), exitID)
		if err != nil {
			return err
		}
		p, err := getTask(t.Context(), mustClient(t, b.rt), exitID)
		if err != nil {
			return err
		}
		if st.State != runtime.ContainerExited || st.ExitCode != 4 || p != nil {
			return fmt.Errorf("exit4: %s code %d, task %v", st.State, st.ExitCode, p)
		}
		return nil
	})
	if err := b.rt.StopContainer(t.Context(), web2ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitLog(t, filepath.Join(a.root, "pods", sb.PodUID, "web2", "0.log"), "stdout", "shutting down", 10*time.Second)
}

// processesWithArgs returns the pids whose command line ends with args.
func processesWithArgs(args ...string) []int {
	want := []byte(strings.Join(args, "\x00") + "\x00")
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.HasSuffix(b, want) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func countLog(t testing.TB, path, text string) int {
	t.Helper()
	es, err := readLog(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.Contains(e.text, text) {
			n++
		}
	}
	return n
}
