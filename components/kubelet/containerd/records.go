package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	ctrd "github.com/containerd/containerd"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Sandboxes and containers are both kept as containerd container records
// in the node's namespace: containers with a snapshot, a spec and (while
// running) a task; sandboxes with an empty spec and never a task. So a
// restart reads one store for both and can never find a container whose
// sandbox metadata is lost (as separate JSON files could, or the other way
// round), `ctr -n NAMESPACE containers ls` shows everything, and each
// record is written atomically by containerd's database.
//
// What never changes after creation is a JSON extension of the record
// (no size limit, out of the way of label filters); what changes
// (sandbox state and IP, container start, exit) is labels, which
// containerd updates key by key. The kubelet's labels are stored verbatim
// beside kiln's own, which all start with labelPrefix.
const (
	labelPrefix = "io.kiln."

	labelKind     = labelPrefix + "kind"
	kindSandbox   = "sandbox"
	kindContainer = "container"

	labelSandbox = labelPrefix + "sandbox"  // a container's sandbox ID
	labelPodUID  = labelPrefix + "pod-uid"  // on both
	labelState   = labelPrefix + "state"    // sandbox: stateCreating, stateReady, stateStopped
	labelIP      = labelPrefix + "ip"       // sandbox
	labelStarted = labelPrefix + "started"  // container, RFC 3339
	labelExit    = labelPrefix + "finished" // container, RFC 3339; set with the three below
	labelCode    = labelPrefix + "exit-code"
	labelReason  = labelPrefix + "reason"
	labelMessage = labelPrefix + "message"

	stateCreating = "creating"
	stateReady    = "ready"
	stateStopped  = "stopped"

	extSandbox   = "io.kiln.sandbox/v1"
	extContainer = "io.kiln.container/v1"
)

// sandboxRecord is the immutable part of a sandbox.
type sandboxRecord struct {
	PodUID       string                `json:"podUID"`
	Namespace    string                `json:"namespace"`
	Name         string                `json:"name"`
	Attempt      uint32                `json:"attempt"`
	Hostname     string                `json:"hostname,omitempty"`
	HostNetwork  bool                  `json:"hostNetwork,omitempty"`
	Ports        []runtime.PortMapping `json:"ports,omitempty"`
	NetNS        string                `json:"netns,omitempty"`
	CgroupParent string                `json:"cgroupParent,omitempty"`
}

// containerRecord is the immutable part of a container.
type containerRecord struct {
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	SandboxID   string            `json:"sandboxID"`
	PodUID      string            `json:"podUID"`
	Image       string            `json:"image"`
	ImageID     string            `json:"imageID"`
	LogPath     string            `json:"logPath,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Stdin, StdinOnce and TTY are the container's (see
	// runtime.ContainerConfig).
	Stdin     bool `json:"stdin,omitempty"`
	StdinOnce bool `json:"stdinOnce,omitempty"`
	TTY       bool `json:"tty,omitempty"`
}

// jsonAny carries a JSON record as a containerd extension (typeurl.Any);
// containerd stores extensions opaquely.
type jsonAny struct {
	url   string
	value []byte
}

func (a *jsonAny) GetTypeUrl() string { return a.url }
func (a *jsonAny) GetValue() []byte   { return a.value }

// withExtension stores v as JSON under name.
func withExtension(name string, v any) ctrd.NewContainerOpts {
	return func(_ context.Context, _ *ctrd.Client, c *containers.Container) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if c.Extensions == nil {
			c.Extensions = map[string]typeurl.Any{}
		}
		c.Extensions[name] = &jsonAny{url: extensionURL(name), value: b}
		return nil
	}
}

func extensionURL(name string) string { return "kiln.dev/" + name }

// extension decodes the JSON extension name of c into v.
func extension(c containers.Container, name string, v any) error {
	a, ok := c.Extensions[name]
	if !ok || a == nil {
		return fmt.Errorf("record %s has no %s extension", c.ID, name)
	}
	if err := json.Unmarshal(a.GetValue(), v); err != nil {
		return fmt.Errorf("record %s: %s: %w", c.ID, name, err)
	}
	return nil
}

// userLabels returns the labels that are not kiln's or containerd's own.
func userLabels(all map[string]string) map[string]string {
	out := make(map[string]string, len(all))
	for k, v := range all {
		if strings.HasPrefix(k, labelPrefix) || strings.HasPrefix(k, "io.containerd.") {
			continue
		}
		out[k] = v
	}
	return out
}

// withLabels merges user labels under kiln's own.
func withLabels(user, own map[string]string) map[string]string {
	out := make(map[string]string, len(user)+len(own))
	for k, v := range user {
		out[k] = v
	}
	for k, v := range own {
		out[k] = v
	}
	return out
}

// setLabels updates only the given labels of record id.
func setLabels(ctx context.Context, c *ctrd.Client, id string, labels map[string]string) error {
	paths := make([]string, 0, len(labels))
	for k := range labels {
		paths = append(paths, "labels."+k)
	}
	_, err := c.ContainerService().Update(ctx, containers.Container{ID: id, Labels: labels}, paths...)
	if err != nil {
		return fmt.Errorf("update %s labels: %w", id, err)
	}
	return nil
}

// getRecord returns record id of kind, or an error wrapping
// runtime.ErrNotFound.
func getRecord(ctx context.Context, c *ctrd.Client, id, kind string) (containers.Container, error) {
	rec, err := c.ContainerService().Get(ctx, id)
	if errdefs.IsNotFound(err) || (err == nil && rec.Labels[labelKind] != kind) {
		return containers.Container{}, fmt.Errorf("%s %q: %w", kind, id, runtime.ErrNotFound)
	}
	if err != nil {
		return containers.Container{}, fmt.Errorf("get %s %q: %w", kind, id, err)
	}
	return rec, nil
}

// kindFilter is the containerd filter for records of kind, plus an
// optional label match.
func kindFilter(kind string, label, value string) string {
	f := fmt.Sprintf("labels.%q==%s", labelKind, kind)
	if label != "" {
		f += fmt.Sprintf(",labels.%q==%s", label, strconv.Quote(value))
	}
	return f
}

// newID returns a random 32-hex-digit ID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
