package containerd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ctrd "github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/events"
	"github.com/containerd/typeurl/v2"
)

// Back-off of the wait for containerd to serve again after it restarted.
const (
	resubscribeMin = 100 * time.Millisecond
	resubscribeMax = 5 * time.Second
	// adoptOpenTimeout bounds the wait for the writer of a stopped task's
	// FIFOs when adopting it: the shim may already have closed them.
	adoptOpenTimeout = time.Second
)

// watchEvents follows containerd's task exit and OOM events until ctx is
// done. After each (re)subscription it sweeps every container, so that
// exits missed while kiln or containerd was down are recorded and the
// logs of containers found running are relayed again; adopted is closed
// after the first successful sweep.
func (r *Runtime) watchEvents(ctx context.Context, adopted chan<- struct{}) error {
	first := true
	for {
		c, err := r.getClient()
		if err != nil {
			return err
		}
		if !r.waitServing(ctx, c) {
			return nil
		}
		sctx, cancel := context.WithCancel(ctx)
		evc, errc := c.EventService().Subscribe(sctx, `topic=="/tasks/exit"`, `topic=="/tasks/oom"`)
		// Subscribed first, swept second: no exit falls in between.
		if err := r.sweep(ctx); err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("cannot adopt containers, retrying", logKeyErr, err)
			continue
		}
		if first {
			close(adopted)
			first = false
		}
	stream:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return nil
			case ev := <-evc:
				r.handleEvent(ctx, ev)
			case err := <-errc:
				if ctx.Err() == nil {
					r.log.Warn("containerd event stream ended, resubscribing", logKeyErr, err)
				}
				break stream
			}
		}
		cancel()
	}
}

// waitServing polls containerd with back-off until it answers (true) or
// ctx is done (false).
func (r *Runtime) waitServing(ctx context.Context, c *ctrd.Client) bool {
	delay := resubscribeMin
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, _ := c.IsServing(sctx)
		cancel()
		if ok {
			return true
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		delay = min(2*delay, resubscribeMax)
	}
}

func (r *Runtime) handleEvent(ctx context.Context, ev *events.Envelope) {
	if ev == nil || ev.Namespace != r.cfg.Namespace || ev.Event == nil {
		return
	}
	v, err := typeurl.UnmarshalAny(ev.Event)
	if err != nil {
		r.log.Debug("cannot decode event", "topic", ev.Topic, logKeyErr, err)
		return
	}
	switch e := v.(type) {
	case *apievents.TaskOOM:
		r.mu.Lock()
		r.oom[e.ContainerID] = true
		r.mu.Unlock()
	case *apievents.TaskExit:
		if e.ID != e.ContainerID {
			return // an exec'd process
		}
		id := e.ContainerID
		r.bg.Go(func() { r.logExitErr(ctx, id, r.handleExit(ctx, id)) })
	}
}

// logExitErr logs a failure to record an exit. While containerd is down
// that is expected, and the sweep after its restart records the exit.
func (r *Runtime) logExitErr(ctx context.Context, id string, err error) {
	switch {
	case err == nil || ctx.Err() != nil:
	case errdefs.IsUnavailable(err):
		r.log.Debug("cannot record container exit yet", logKeyContainer, id, logKeyErr, err)
	default:
		r.log.Warn("cannot record container exit", logKeyContainer, id, logKeyErr, err)
	}
}

// sweep adopts what an earlier run (or a containerd restart) left: it
// relays the logs of running tasks, records the exits of stopped tasks
// and of tasks that vanished, and removes tasks that were created but
// never started.
func (r *Runtime) sweep(ctx context.Context) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	recs, err := c.ContainerService().List(ctx, kindFilter(kindContainer, "", ""))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	procs, err := r.taskMap(ctx, c)
	if err != nil {
		return err
	}
	var running, exited int
	for _, rec := range recs {
		if rec.Labels[labelExit] != "" && procs[rec.ID] == nil {
			continue
		}
		proc := procs[rec.ID]
		switch {
		case proc == nil:
			if rec.Labels[labelStarted] != "" {
				exited++
				if err := r.handleExit(ctx, rec.ID); err != nil {
					return err
				}
			}
		case proc.Status == tasktypes.Status_STOPPED:
			exited++
			r.attachRelay(rec, proc, adoptOpenTimeout)
			id := rec.ID
			r.bg.Go(func() { r.logExitErr(ctx, id, r.handleExit(ctx, id)) })
		case proc.Status == tasktypes.Status_CREATED:
			if err := r.deleteUnstarted(ctx, rec.ID); err != nil {
				return err
			}
		default:
			running++
			r.attachRelay(rec, proc, 0)
		}
	}
	r.log.Info("adopted containers", "running", running, "exited", exited)
	return nil
}

// attachRelay relays the output of an adopted task to its log file again,
// reopening the FIFOs the task was created with.
func (r *Runtime) attachRelay(rec containers.Container, proc *tasktypes.Process, openTimeout time.Duration) {
	var cr containerRecord
	if err := extension(rec, extContainer, &cr); err != nil {
		r.log.Warn("cannot relay logs", logKeyContainer, rec.ID, logKeyErr, err)
		return
	}
	fc := cio.Config{Stdin: proc.Stdin, Stdout: proc.Stdout, Stderr: proc.Stderr, Terminal: proc.Terminal}
	if _, err := r.startRelay(rec.ID, cr, fc, openTimeout); err != nil {
		r.log.Warn("cannot relay logs", logKeyContainer, rec.ID, logKeyErr, err)
	}
}

// deleteUnstarted removes a task that was created but not started (kiln
// died in between); the container is "created" again and StartContainer
// makes a new task. A StartContainer in progress holds the lock, and after
// it the task is no longer in the created state.
func (r *Runtime) deleteUnstarted(ctx context.Context, id string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	unlock := r.locks.lock(id)
	defer unlock()
	proc, err := getTask(ctx, c, id)
	if err != nil || proc == nil || proc.Status != tasktypes.Status_CREATED {
		return err
	}
	if _, err := c.TaskService().Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: id}); err != nil && !errdefs.IsNotFound(errdefs.FromGRPC(err)) {
		return fmt.Errorf("delete unstarted task %s: %w", id, errdefs.FromGRPC(err))
	}
	r.finishRelay(id, 0)
	return nil
}

// handleExit records the exit of container id in its labels (time, code,
// reason) once its output has reached the log, then deletes its task,
// which ends the shim. It is idempotent and does nothing while the task
// runs.
func (r *Runtime) handleExit(ctx context.Context, id string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	unlock := r.locks.lock(id)
	defer unlock()
	rec, err := getRecord(ctx, c, id, kindContainer)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	proc, err := getTask(ctx, c, id)
	if err != nil {
		return err
	}
	if rec.Labels[labelExit] == "" {
		var labels map[string]string
		switch {
		case proc == nil && rec.Labels[labelStarted] == "":
			return nil // never started
		case proc == nil:
			labels = map[string]string{
				labelExit:    time.Now().UTC().Format(time.RFC3339Nano),
				labelCode:    strconv.Itoa(lostExitCode),
				labelReason:  "Error",
				labelMessage: lostMessage,
			}
		case proc.Status != tasktypes.Status_STOPPED:
			return nil
		default:
			r.drainRelay(id, exitDrain)
			at := time.Now()
			if proc.ExitedAt != nil {
				at = proc.ExitedAt.AsTime()
			}
			labels = map[string]string{
				labelExit:   at.UTC().Format(time.RFC3339Nano),
				labelCode:   strconv.Itoa(int(proc.ExitStatus)),
				labelReason: r.exitReason(rec, int(proc.ExitStatus)),
			}
		}
		if err := setLabels(ctx, c, id, labels); err != nil {
			return err
		}
		r.log.Debug("container exited", logKeyContainer, id, logKeyExitCode, labels[labelCode], logKeyReason, labels[labelReason])
	}
	if proc != nil {
		if _, err := c.TaskService().Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: id}); err != nil && !errdefs.IsNotFound(errdefs.FromGRPC(err)) {
			return fmt.Errorf("delete task %s: %w", id, errdefs.FromGRPC(err))
		}
	}
	r.finishRelay(id, exitDrain)
	r.forgetOOM(id)
	return nil
}

// exitReason is "OOMKilled" when the container's memory cgroup killed a
// process (an OOM event, or the cgroup's own count, which also covers
// kills while kiln was down), else "Completed" or "Error" by exit code.
func (r *Runtime) exitReason(rec containers.Container, code int) string {
	r.mu.Lock()
	oom := r.oom[rec.ID]
	r.mu.Unlock()
	if oom || cgroupOOMKills(cgroupsPath(rec)) > 0 {
		return "OOMKilled"
	}
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

func (r *Runtime) forgetOOM(id string) {
	r.mu.Lock()
	delete(r.oom, id)
	r.mu.Unlock()
}

// cgroupOOMKills returns the OOM kill count of the memory cgroup at path
// (cgroupfs layout; cgroup v1 memory.oom_control or v2 memory.events). It
// still exists after the container's init exits, until its task is
// deleted.
func cgroupOOMKills(path string) int {
	if !ownCgroup(path) {
		return 0
	}
	file := filepath.Join(cgroupRoot, "memory", path, "memory.oom_control")
	if unifiedCgroups(cgroupRoot) {
		file = filepath.Join(cgroupRoot, path, "memory.events")
	}
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == "oom_kill" {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
