package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// RunPodSandbox implements runtime.Runtime. The record is written first
// (state creating), then the namespace and network are made and the
// record marked ready: a crash in between leaves a record that the
// kubelet sees as not ready and removes, which also frees its network.
func (r *Runtime) RunPodSandbox(ctx context.Context, cfg *runtime.SandboxConfig) (*runtime.Sandbox, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	var n *podNetwork
	if !cfg.HostNetwork {
		if n = r.getNetwork(); n == nil {
			return nil, fmt.Errorf("pod %s/%s: %w", cfg.Namespace, cfg.Name, ErrNoPodCIDR)
		}
	}
	id := newID()
	unlock := r.locks.lock(id)
	defer unlock()
	rec := sandboxRecord{
		PodUID:       cfg.PodUID,
		Namespace:    cfg.Namespace,
		Name:         cfg.Name,
		Attempt:      cfg.Attempt,
		Hostname:     cfg.Hostname,
		HostNetwork:  cfg.HostNetwork,
		Ports:        cfg.Ports,
		CgroupParent: cfg.CgroupParent,
	}
	if !cfg.HostNetwork {
		rec.NetNS = filepath.Join(r.p.netns, id)
	}
	labels := withLabels(cfg.Labels, map[string]string{
		labelKind:   kindSandbox,
		labelPodUID: cfg.PodUID,
		labelState:  stateCreating,
	})
	if err := createSandboxRecord(ctx, c, id, labels, &rec); err != nil {
		return nil, err
	}
	log := r.log.With(logKeySandbox, id, "pod", cfg.Namespace+"/"+cfg.Name)

	ip := r.nodeIP()
	if !cfg.HostNetwork {
		ip, err = r.startNetwork(ctx, n, id, &rec)
		if err != nil {
			// Keep the caller's error; the cleanup is best effort.
			cctx := context.WithoutCancel(ctx)
			if derr := c.ContainerService().Delete(cctx, id); derr != nil {
				log.Warn("cannot delete failed sandbox", logKeyErr, derr)
			}
			return nil, fmt.Errorf("pod %s/%s network: %w", cfg.Namespace, cfg.Name, err)
		}
	}
	if err := setLabels(ctx, c, id, map[string]string{labelState: stateReady, labelIP: ip}); err != nil {
		return nil, err
	}
	got, err := getRecord(ctx, c, id, kindSandbox)
	if err != nil {
		return nil, err
	}
	log.Debug("sandbox ready", "ip", ip)
	return sandboxFrom(got, &rec), nil
}

// startNetwork creates the sandbox's namespace and runs CNI ADD; on error
// it undoes both.
func (r *Runtime) startNetwork(ctx context.Context, n *podNetwork, id string, rec *sandboxRecord) (string, error) {
	if err := createNetns(rec.NetNS); err != nil {
		return "", err
	}
	ip, err := r.setupNetwork(ctx, n, id, rec.NetNS, rec)
	if err != nil {
		cctx := context.WithoutCancel(ctx)
		if derr := r.teardownNetwork(cctx, n, id, rec.NetNS, rec); derr != nil {
			r.log.Warn("cannot tear down failed sandbox network", logKeySandbox, id, logKeyErr, derr)
		}
		_ = removeNetns(rec.NetNS)
		return "", err
	}
	return ip, nil
}

// StopPodSandbox implements runtime.Runtime: it kills containers still
// running in the sandbox, then runs CNI DEL and removes the namespace.
func (r *Runtime) StopPodSandbox(ctx context.Context, id string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	got, err := getRecord(ctx, c, id, kindSandbox)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := r.killSandboxContainers(ctx, id); err != nil {
		return err
	}
	unlock := r.locks.lock(id)
	defer unlock()
	return r.stopSandbox(ctx, c, got)
}

// stopSandbox tears down got's network once; the caller holds its lock.
func (r *Runtime) stopSandbox(ctx context.Context, c *ctrd.Client, got containers.Container) error {
	if got.Labels[labelState] == stateStopped {
		return nil
	}
	var rec sandboxRecord
	if err := extension(got, extSandbox, &rec); err != nil {
		return err
	}
	if !rec.HostNetwork {
		if n := r.getNetwork(); n != nil {
			if err := r.teardownNetwork(ctx, n, got.ID, rec.NetNS, &rec); err != nil {
				return fmt.Errorf("sandbox %s: %w", got.ID, err)
			}
		} else {
			r.log.Warn("no network config to tear down sandbox with; its IP stays allocated", logKeySandbox, got.ID)
		}
		if err := removeNetns(rec.NetNS); err != nil {
			return fmt.Errorf("sandbox %s: %w", got.ID, err)
		}
	}
	return setLabels(ctx, c, got.ID, map[string]string{labelState: stateStopped, labelIP: ""})
}

// RemovePodSandbox implements runtime.Runtime. Containers left in the
// sandbox are killed and removed with it.
func (r *Runtime) RemovePodSandbox(ctx context.Context, id string) error {
	c, err := r.getClient()
	if err != nil {
		return err
	}
	got, err := getRecord(ctx, c, id, kindSandbox)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	cs, err := r.ListContainers(ctx, runtime.ContainerFilter{SandboxID: id})
	if err != nil {
		return err
	}
	for _, ct := range cs {
		if err := r.RemoveContainer(ctx, ct.ID); err != nil {
			return err
		}
	}
	unlock := r.locks.lock(id)
	defer unlock()
	if err := r.stopSandbox(ctx, c, got); err != nil {
		return err
	}
	if err := c.ContainerService().Delete(ctx, id); err != nil && !isNotFound(err) {
		return fmt.Errorf("delete sandbox %s: %w", id, err)
	}
	return nil
}

// ListPodSandboxes implements runtime.Runtime. containerd filters by
// label, so the kubelet's look at one pod decodes that pod's records only.
func (r *Runtime) ListPodSandboxes(ctx context.Context, filter runtime.SandboxFilter) ([]*runtime.Sandbox, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	f := kindFilter(kindSandbox, "", "")
	if filter.PodUID != "" {
		f += fmt.Sprintf(",labels.%q==%s", labelPodUID, strconv.Quote(filter.PodUID))
	}
	recs, err := c.ContainerService().List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	out := make([]*runtime.Sandbox, 0, len(recs))
	for _, got := range recs {
		var rec sandboxRecord
		if err := extension(got, extSandbox, &rec); err != nil {
			return nil, err
		}
		out = append(out, sandboxFrom(got, &rec))
	}
	return out, nil
}

// killSandboxContainers SIGKILLs what still runs in sandbox id.
func (r *Runtime) killSandboxContainers(ctx context.Context, id string) error {
	cs, err := r.ListContainers(ctx, runtime.ContainerFilter{SandboxID: id})
	if err != nil {
		return err
	}
	for _, ct := range cs {
		if ct.State == runtime.ContainerRunning {
			if err := r.StopContainer(ctx, ct.ID, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// sandboxFrom builds the kubelet's view of a sandbox record. A ready
// sandbox whose namespace is no longer mounted (the node rebooted) is
// reported not ready.
func sandboxFrom(got containers.Container, rec *sandboxRecord) *runtime.Sandbox {
	state := runtime.SandboxNotReady
	if got.Labels[labelState] == stateReady && (rec.HostNetwork || isNetns(rec.NetNS)) {
		state = runtime.SandboxReady
	}
	return &runtime.Sandbox{
		ID:        got.ID,
		PodUID:    rec.PodUID,
		Namespace: rec.Namespace,
		Name:      rec.Name,
		Attempt:   rec.Attempt,
		State:     state,
		IP:        got.Labels[labelIP],
		CreatedAt: got.CreatedAt,
		Labels:    userLabels(got.Labels),
	}
}

// getSandbox returns the record of sandbox id.
func (r *Runtime) getSandbox(ctx context.Context, c *ctrd.Client, id string) (*sandboxRecord, error) {
	got, err := getRecord(ctx, c, id, kindSandbox)
	if err != nil {
		return nil, err
	}
	var rec sandboxRecord
	if err := extension(got, extSandbox, &rec); err != nil {
		return nil, err
	}
	if got.Labels[labelState] != stateReady {
		return nil, fmt.Errorf("sandbox %s is not ready", id)
	}
	return &rec, nil
}

// createSandboxRecord writes the record straight to the container store:
// it has no snapshot or image, so the client's NewContainer (a lease
// created and deleted around it, three transactions) buys nothing.
func createSandboxRecord(ctx context.Context, c *ctrd.Client, id string, labels map[string]string, rec *sandboxRecord) error {
	spec, err := typeurl.MarshalAny(&oci.Spec{Version: specs.Version})
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = c.ContainerService().Create(ctx, containers.Container{
		ID:         id,
		Labels:     labels,
		Spec:       spec,
		Runtime:    containers.RuntimeInfo{Name: c.Runtime()},
		Extensions: map[string]typeurl.Any{extSandbox: &jsonAny{url: extensionURL(extSandbox), value: b}},
	})
	if err != nil {
		return fmt.Errorf("create sandbox record: %w", err)
	}
	return nil
}
