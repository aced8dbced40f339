package containerd

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Supervision timings.
const (
	daemonStopGrace     = 10 * time.Second
	daemonRestartMin    = time.Second
	daemonRestartMax    = 30 * time.Second
	daemonStableRunTime = time.Minute // a run this long resets the back-off
)

// daemon supervises containerd as a child process of kiln.
//
// containerd is started with Pdeathsig=SIGKILL so that it dies with kiln
// even on kill -9 (a new kiln must be able to start its own on the same
// root); the runc shims are not its children in the kill sense (each shim
// daemonizes into its own process group and is re-parented to init), so the
// containers survive both kiln and containerd, and a restarted containerd
// on the same root and state reconnects to them.
type daemon struct {
	bin          string
	p            paths
	log          *slog.Logger
	startTimeout time.Duration

	// abrupt makes the stop a SIGKILL, as kill -9 of kiln would do; the
	// restart tests set it.
	abrupt atomic.Bool

	mu  sync.Mutex
	pid int
}

const daemonConfig = `# Written by kiln at every start; edits are lost.
version = 2
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`

// run starts containerd, restarts it with back-off when it dies, and
// stops it when ctx is done. It returns nil on a clean stop and an error
// only when containerd cannot be started at all.
func (d *daemon) run(ctx context.Context) error {
	// Pdeathsig fires when the *thread* that forked the child exits, and
	// the Go runtime ends threads whose goroutine exits while locked (as
	// the netns code does). Holding this goroutine on its own locked
	// thread for as long as containerd runs keeps that thread alive.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	if err := d.prepare(); err != nil {
		return err
	}
	delay := daemonRestartMin
	for {
		started := time.Now()
		cmd, err := d.start()
		if err != nil {
			return err
		}
		waitc := make(chan error, 1)
		go func() { waitc <- cmd.Wait() }()
		select {
		case <-ctx.Done():
			d.stop(cmd, waitc)
			return nil
		case err := <-waitc:
			d.setPID(0)
			if time.Since(started) > daemonStableRunTime {
				delay = daemonRestartMin
			}
			d.log.Warn("containerd exited, restarting", logKeyErr, err, logKeyDelay, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, daemonRestartMax)
	}
}

// prepare writes containerd's config and removes what a previous kiln
// that died without stopping it may have left: its containerd (should
// Pdeathsig not have fired) and the socket.
func (d *daemon) prepare() error {
	for _, dir := range []string{d.p.dir, d.p.root, d.p.state, filepath.Dir(d.p.address)} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return err
		}
	}
	cfg := fmt.Sprintf(daemonConfig, d.p.root, d.p.state, d.p.address, filepath.Join(d.p.dir, "opt"))
	if err := os.WriteFile(d.p.config, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	if err := d.killStale(); err != nil {
		return err
	}
	if err := os.Remove(d.p.address); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// killStale kills a containerd that an earlier kiln started on this root
// and left behind; two on one root would fight over its database.
func (d *daemon) killStale() error {
	b, err := os.ReadFile(d.p.pidFile)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(d.p.config)) || !alive(pid) {
		return nil
	}
	d.log.Warn("killing containerd left by an earlier kiln", logKeyPID, pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill stale containerd %d: %w", pid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("stale containerd %d did not exit", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// alive reports whether pid runs and is not a zombie (an orphan whose
// parent does not reap it holds no files).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

func (d *daemon) start() (*exec.Cmd, error) {
	out, err := os.OpenFile(d.p.daemonLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(d.bin, "--config", d.p.config)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a ^C to kiln's group reaches kiln, which
		// then stops containerd in order.
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	d.setPID(cmd.Process.Pid)
	if err := os.WriteFile(d.p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		d.log.Warn("cannot write containerd pid file", logKeyErr, err)
	}
	d.log.Info("started containerd", logKeyPID, cmd.Process.Pid, logKeyAddress, d.p.address)
	return cmd, nil
}

// stop asks containerd to exit (SIGTERM) and kills it after a grace
// period. The shims, and so the containers, keep running either way.
func (d *daemon) stop(cmd *exec.Cmd, waitc <-chan error) {
	defer d.setPID(0)
	if d.abrupt.Load() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-waitc
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(daemonStopGrace)
	defer t.Stop()
	select {
	case <-waitc:
		d.log.Info("stopped containerd")
	case <-t.C:
		d.log.Warn("containerd ignored SIGTERM, killing it")
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-waitc
	}
	_ = os.Remove(d.p.pidFile)
}

func (d *daemon) setPID(pid int) {
	d.mu.Lock()
	d.pid = pid
	d.mu.Unlock()
}

// currentPID is the running containerd's pid, 0 if none.
func (d *daemon) currentPID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pid
}
