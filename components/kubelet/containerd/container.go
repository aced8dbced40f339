package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	ctrd "github.com/containerd/containerd"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Bounds of the waits inside container operations.
const (
	// exitDrain is how long an exit waits for the container's last output
	// to reach the log file before the task is deleted.
	exitDrain = 5 * time.Second
	// killWait bounds the wait for a SIGKILLed container to exit.
	killWait = 30 * time.Second
)

// Exit code and message of a container whose task vanished without an
// exit status (host reboot, containerd state lost).
const (
	lostExitCode = 255
	lostMessage  = "the container's task is gone without an exit status (host reboot or containerd state lost)"
)

// CreateContainer implements runtime.Runtime.
func (r *Runtime) CreateContainer(ctx context.Context, sandboxID string, cfg *runtime.ContainerConfig) (string, error) {
	c, err := r.getClient()
	if err != nil {
		return "", err
	}
	sb, err := r.getSandbox(ctx, c, sandboxID)
	if err != nil {
		return "", err
	}
	img, err := r.findImage(ctx, c, cfg.Image)
	if err != nil {
		return "", err
	}
	if err := ensureUnpacked(ctx, img); err != nil {
		return "", err
	}
	ociImg, err := img.Spec(ctx)
	if err != nil {
		return "", fmt.Errorf("image %s config: %w", img.Name(), err)
	}
	id := newID()
	rec := containerRecord{
		Name:        cfg.Name,
		Attempt:     cfg.Attempt,
		SandboxID:   sandboxID,
		PodUID:      sb.PodUID,
		Image:       cfg.Image,
		ImageID:     repoDigest(img),
		LogPath:     cfg.LogPath,
		Annotations: cfg.Annotations,
		Stdin:       cfg.Stdin,
		StdinOnce:   cfg.StdinOnce,
		TTY:         cfg.TTY,
	}
	opts, err := specOpts(id, sb, cfg, img, ociImg.Config)
	if err != nil {
		return "", err
	}
	if cfg.PIDNamespaceOf != "" {
		ns, err := r.pidNamespace(ctx, cfg.PIDNamespaceOf)
		if err != nil {
			return "", fmt.Errorf("container %s: process namespace of %s: %w", cfg.Name, cfg.PIDNamespaceOf, err)
		}
		opts = append(opts, oci.WithLinuxNamespace(ns))
	}
	stopSignal := ociImg.Config.StopSignal
	if stopSignal == "" {
		stopSignal = "SIGTERM"
	}
	labels := withLabels(cfg.Labels, map[string]string{
		labelKind:    kindContainer,
		labelSandbox: sandboxID,
		labelPodUID:  sb.PodUID,
		// Where ctrd.GetStopSignal (StopContainer) finds it.
		ctrd.StopSignalLabel: stopSignal,
	})
	if _, err := c.NewContainer(ctx, id,
		ctrd.WithContainerLabels(labels),
		ctrd.WithImageName(img.Name()),
		ctrd.WithSnapshotter(DefaultSnapshotter),
		ctrd.WithNewSnapshot(id, img),
		withExtension(extContainer, rec),
		ctrd.WithNewSpec(opts...),
	); err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.Name, err)
	}
	return id, nil
}

// pidNamespace is the process namespace of running container id's task.
func (r *Runtime) pidNamespace(ctx context.Context, id string) (specs.LinuxNamespace, error) {
	task, err := r.loadTask(ctx, id)
	if err != nil {
		return specs.LinuxNamespace{}, err
	}
	return specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", task.Pid())}, nil
}

// StartContainer implements runtime.Runtime: it starts the log relay,
// creates the task with the relay's FIFOs and starts it.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	unlock := r.locks.lock(id)
	defer unlock()
	got, err := getRecord(ctx, c, id, kindContainer)
	if err != nil {
		return err
	}
	if got.Labels[labelStarted] != "" {
		return fmt.Errorf("container %s was started before; create a new one", id)
	}
	var rec containerRecord
	if err := extension(got, extContainer, &rec); err != nil {
		return err
	}
	ct, err := c.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	// A task left by a crash between create and start is started afresh.
	if t, err := ct.Task(ctx, nil); err == nil {
		if _, err := t.Delete(ctx, ctrd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete stale task of %s: %w", id, err)
		}
	}
	fc := r.fifoPaths(id, rec)
	relay, err := r.startRelay(id, rec, fc, 0)
	if err != nil {
		return fmt.Errorf("container %s logs: %w", id, err)
	}
	task, err := ct.NewTask(ctx, func(string) (cio.IO, error) { return relayIO{fc}, nil }, r.taskOpts()...)
	if err != nil {
		relay.close()
		return fmt.Errorf("create task %s: %w", rec.Name, err)
	}
	// Taken before the start: a quick container's exit time must not
	// come before its start time.
	startedAt := time.Now()
	if err := task.Start(ctx); err != nil {
		cctx := context.WithoutCancel(ctx)
		_, _ = task.Delete(cctx, ctrd.WithProcessKill)
		relay.close()
		return fmt.Errorf("start %s: %w", rec.Name, err)
	}
	return setLabels(ctx, c, id, map[string]string{labelStarted: startedAt.UTC().Format(time.RFC3339Nano)})
}

// StopContainer implements runtime.Runtime. A timeout of 0 kills at once.
func (r *Runtime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	ct, err := c.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("container %q: %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	task, err := ct.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil // never started, or exited and recorded
	}
	if err != nil {
		return fmt.Errorf("task of %s: %w", id, err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return fmt.Errorf("task status of %s: %w", id, err)
	}
	switch st.Status {
	case ctrd.Stopped:
		return r.handleExit(ctx, id)
	case ctrd.Created:
		return nil
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", id, err)
	}
	sig := syscall.SIGKILL
	if timeout > 0 {
		if sig, err = ctrd.GetStopSignal(ctx, ct, syscall.SIGTERM); err != nil {
			sig = syscall.SIGTERM
		}
	}
	if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("signal %s: %w", id, err)
	}
	exited := false
	if sig != syscall.SIGKILL {
		t := time.NewTimer(timeout)
		select {
		case <-exitc:
			exited = true
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
		if !exited {
			if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
				return fmt.Errorf("kill %s: %w", id, err)
			}
		}
	}
	if !exited {
		t := time.NewTimer(killWait)
		defer t.Stop()
		select {
		case <-exitc:
		case <-t.C:
			return fmt.Errorf("container %s did not exit %s after SIGKILL", id, killWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Record the exit now, so the kubelet's next status read sees it.
	return r.handleExit(ctx, id)
}

// RemoveContainer implements runtime.Runtime. A container still running
// is killed first.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	unlock := r.locks.lock(id)
	defer unlock()
	ct, err := c.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		r.finishRelay(id, 0)
		return nil
	}
	if err != nil {
		return fmt.Errorf("load container %s: %w", id, err)
	}
	if task, err := ct.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, ctrd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task of %s: %w", id, err)
		}
	}
	r.finishRelay(id, exitDrain)
	if err := ct.Delete(ctx, ctrd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	r.forgetOOM(id)
	return nil
}

// ListContainers implements runtime.Runtime.
func (r *Runtime) ListContainers(ctx context.Context, filter runtime.ContainerFilter) ([]*runtime.ContainerStatus, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	f := kindFilter(kindContainer, "", "")
	if filter.SandboxID != "" {
		f += fmt.Sprintf(",labels.%q==%s", labelSandbox, strconv.Quote(filter.SandboxID))
	}
	if filter.PodUID != "" {
		f += fmt.Sprintf(",labels.%q==%s", labelPodUID, strconv.Quote(filter.PodUID))
	}
	recs, err := c.ContainerService().List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	// containerd answers a task list by asking every shim of the
	// namespace for its state, one after another: under the load of many
	// pods starting that takes hundreds of milliseconds. The kubelet lists
	// one pod's containers at every sync, so a filtered list asks only
	// their shims (a container without a task costs no shim call).
	var procs map[string]*tasktypes.Process
	if filter.SandboxID != "" || filter.PodUID != "" {
		procs = make(map[string]*tasktypes.Process, len(recs))
		for _, rec := range recs {
			proc, err := getTask(ctx, c, rec.ID)
			if err != nil {
				return nil, err
			}
			procs[rec.ID] = proc
		}
	} else if procs, err = r.taskMap(ctx, c); err != nil {
		return nil, err
	}
	out := make([]*runtime.ContainerStatus, 0, len(recs))
	for _, rec := range recs {
		proc := procs[rec.ID]
		if seemsLost(rec, proc) {
			if rec, err = getRecord(ctx, c, rec.ID, kindContainer); err != nil {
				if isNotFound(err) {
					continue // removed meanwhile
				}
				return nil, err
			}
		}
		out = append(out, r.statusFrom(rec, proc))
	}
	return out, nil
}

// seemsLost reports a started container with neither a recorded exit nor
// a task. That is what a lost task looks like, but also what a reader sees
// when handleExit records the exit (labels first) and deletes the task
// (second) between its read of the record and its read of the task. Read
// again after the task, the record then has the exit; if it still has
// none, the task is truly lost.
func seemsLost(rec containers.Container, proc *tasktypes.Process) bool {
	return proc == nil && rec.Labels[labelStarted] != "" && rec.Labels[labelExit] == ""
}

// ContainerStatus implements runtime.Runtime.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*runtime.ContainerStatus, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	rec, err := getRecord(ctx, c, id, kindContainer)
	if err != nil {
		return nil, err
	}
	proc, err := getTask(ctx, c, id)
	if err != nil {
		return nil, err
	}
	if seemsLost(rec, proc) {
		if rec, err = getRecord(ctx, c, rec.ID, kindContainer); err != nil {
			return nil, err
		}
	}
	return r.statusFrom(rec, proc), nil
}

// taskMap returns the tasks of the namespace by container ID.
func (r *Runtime) taskMap(ctx context.Context, c *ctrd.Client) (map[string]*tasktypes.Process, error) {
	resp, err := c.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errdefs.FromGRPC(err))
	}
	m := make(map[string]*tasktypes.Process, len(resp.Tasks))
	for _, t := range resp.Tasks {
		m[t.ID] = t
	}
	return m, nil
}

// getTask returns container id's task, nil if it has none.
func getTask(ctx context.Context, c *ctrd.Client, id string) (*tasktypes.Process, error) {
	resp, err := c.TaskService().Get(ctx, &tasks.GetRequest{ContainerID: id})
	if err != nil {
		if errdefs.IsNotFound(errdefs.FromGRPC(err)) {
			return nil, nil
		}
		return nil, fmt.Errorf("task of %s: %w", id, errdefs.FromGRPC(err))
	}
	return resp.Process, nil
}

// statusFrom is the truth about one container, from its record and its
// task (nil if none). An exit is read from the labels once recorded, else
// from the stopped task.
func (r *Runtime) statusFrom(rec containers.Container, proc *tasktypes.Process) *runtime.ContainerStatus {
	var cr containerRecord
	_ = extension(rec, extContainer, &cr) // a bad record still reports its ID and state
	st := &runtime.ContainerStatus{
		ID:          rec.ID,
		SandboxID:   cr.SandboxID,
		PodUID:      cr.PodUID,
		Name:        cr.Name,
		Attempt:     cr.Attempt,
		CreatedAt:   rec.CreatedAt,
		StartedAt:   parseTime(rec.Labels[labelStarted]),
		Image:       cr.Image,
		ImageID:     cr.ImageID,
		LogPath:     cr.LogPath,
		Labels:      userLabels(rec.Labels),
		Annotations: cr.Annotations,
	}
	if rec.Labels[labelExit] != "" {
		st.State = runtime.ContainerExited
		st.FinishedAt = parseTime(rec.Labels[labelExit])
		code, _ := strconv.Atoi(rec.Labels[labelCode])
		st.ExitCode = int32(code)
		st.Reason = rec.Labels[labelReason]
		st.Message = rec.Labels[labelMessage]
		return st
	}
	switch {
	case proc == nil && st.StartedAt.IsZero():
		st.State = runtime.ContainerCreated
	case proc == nil:
		st.State = runtime.ContainerExited
		st.ExitCode = lostExitCode
		st.Reason = "Error"
		st.Message = lostMessage
	case proc.Status == tasktypes.Status_RUNNING, proc.Status == tasktypes.Status_PAUSED, proc.Status == tasktypes.Status_PAUSING:
		st.State = runtime.ContainerRunning
	case proc.Status == tasktypes.Status_CREATED:
		st.State = runtime.ContainerCreated
	case proc.Status == tasktypes.Status_STOPPED:
		st.State = runtime.ContainerExited
		st.ExitCode = int32(proc.ExitStatus)
		if proc.ExitedAt != nil {
			st.FinishedAt = proc.ExitedAt.AsTime()
		}
		st.Reason = r.exitReason(rec, int(proc.ExitStatus))
	default:
		st.State = runtime.ContainerUnknown
	}
	return st
}

// cgroupsPath reads the cgroup of a container from its stored spec.
func cgroupsPath(rec containers.Container) string {
	if rec.Spec == nil {
		return ""
	}
	var s specs.Spec
	if err := json.Unmarshal(rec.Spec.GetValue(), &s); err != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func isNotFound(err error) bool {
	return errdefs.IsNotFound(err) || errors.Is(err, runtime.ErrNotFound)
}

// taskOpts are the options of a new task: with kiln's own containerd,
// runc keeps its state on the state tmpfs too (its default, /run, may be
// a disk).
func (r *Runtime) taskOpts() []ctrd.NewTaskOpts {
	if r.daemon == nil {
		return nil
	}
	root := filepath.Join(r.p.state, "runc")
	return []ctrd.NewTaskOpts{func(_ context.Context, _ *ctrd.Client, ti *ctrd.TaskInfo) error {
		if ti.Options == nil {
			ti.Options = &runcoptions.Options{}
		}
		opts, ok := ti.Options.(*runcoptions.Options)
		if !ok {
			return fmt.Errorf("task options are %T, not runc's", ti.Options)
		}
		opts.Root = root
		return nil
	}}
}
