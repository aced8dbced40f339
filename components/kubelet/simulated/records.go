package simulated

import (
	"fmt"
	"slices"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// What tests read back and how they play the workload. None of it is part
// of runtime.Runtime.

// Configs returns the CreateContainer calls for one container of a pod,
// oldest first; an empty name means every container of the pod.
func (r *Runtime) Configs(podUID, name string) []ContainerRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ContainerRecord
	for _, rec := range r.records {
		if rec.PodUID == podUID && (name == "" || rec.Config.Name == name) {
			c := *rec
			c.Config = copyConfig(&rec.Config)
			out = append(out, c)
		}
	}
	return out
}

// StopCalls returns every StopContainer call for a pod, oldest first.
func (r *Runtime) StopCalls(podUID string) []StopCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []StopCall
	for _, s := range r.stops {
		if s.PodUID == podUID {
			out = append(out, s)
		}
	}
	return out
}

// ExecCalls returns every ExecSync call for a pod, oldest first.
func (r *Runtime) ExecCalls(podUID string) []ExecCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []ExecCall
	for _, e := range r.execs {
		if e.PodUID == podUID {
			e.Cmd = slices.Clone(e.Cmd)
			out = append(out, e)
		}
	}
	return out
}

// Pulls returns the normalized refs of every PullImage call, in order.
func (r *Runtime) Pulls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pulls)
}

// SetExecExitCode makes ExecSync in the named container of a pod exit
// with code from now on, whatever its annotations say.
func (r *Runtime) SetExecExitCode(podUID, name string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.execCodes[podUID+"/"+name] = code
}

// Running returns the ID of the running container of that name in a pod.
func (r *Runtime) Running(podUID, name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.containers {
		if c.status.PodUID == podUID && c.status.Name == name && c.status.State == runtime.ContainerRunning {
			return id, true
		}
	}
	return "", false
}

// Exit makes a running container exit now with code, as if its process
// ended.
func (r *Runtime) Exit(id string, code int32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok || c.status.State != runtime.ContainerRunning {
		return fmt.Errorf("exit container %s: not running", id)
	}
	r.exitLocked(c, code, "")
	return nil
}

// Counts reports how many sandboxes and containers the runtime holds, in
// any state.
func (r *Runtime) Counts() (sandboxes, containers int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sandboxes), len(r.containers)
}

// PullCredentials returns the registry credentials the last pull of ref
// was given.
func (r *Runtime) PullCredentials(ref string) []runtime.RegistryCredential {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pullCreds[normalize(ref)])
}
