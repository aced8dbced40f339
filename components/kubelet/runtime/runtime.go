// Package runtime is the kubelet's view of a container runtime: pod
// sandboxes (one network namespace per pod), images and containers. It is a
// small subset of the CRI shaped for kiln; the kubelet owns it and two
// packages implement it: containerd (real containers through containerd and
// runc, pod networking through CNI) and simulated (hollow nodes for scale
// tests, containers that "run" in memory).
//
// The kubelet decides everything that is Kubernetes semantics (restart
// policy, back-off, probes, env, volumes, /etc/hosts and /etc/resolv.conf
// as files it mounts); a Runtime only does what it is told and reports the
// truth back.
package runtime

import (
	"context"
	"errors"
	"io"
	"net"
	"time"
)

// Labels the kubelet puts on every sandbox and container so that, after a
// restart, it can adopt what is still running and remove what belongs to
// pods that are gone. Runtimes store labels verbatim and return them.
const (
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelContainerName = "io.kubernetes.container.name"
	// AnnotationContainerHash holds the kubelet's hash of the container's
	// spec, so a changed spec restarts the container.
	AnnotationContainerHash = "io.kubernetes.container.hash"
)

// ErrNotFound is returned (wrapped) for a sandbox, container or image that
// the runtime does not have.
var ErrNotFound = errors.New("not found")

// Runtime is a container runtime as the kubelet uses it. Every method is
// safe for concurrent use. IDs are opaque strings chosen by the runtime.
type Runtime interface {
	// Version names the runtime for Node.status.nodeInfo, e.g.
	// ("containerd", "1.6.20").
	Version(ctx context.Context) (name, version string, err error)
	// Status reports whether the runtime and its pod network are ready.
	Status(ctx context.Context) (Status, error)
	// SetPodCIDR gives the runtime the node's pod CIDR (from
	// Node.spec.podCIDR) for the pod network; pods started before it is set
	// fail with a clear error, except host-network ones.
	SetPodCIDR(ctx context.Context, cidr string) error

	// ImageStatus returns the image if it is present locally, or an error
	// wrapping ErrNotFound.
	ImageStatus(ctx context.Context, ref string) (*Image, error)
	// PullImage fetches ref from its registry (or finds it among imported
	// archives) and returns it. The error says why, e.g. "not found".
	PullImage(ctx context.Context, ref string, creds []RegistryCredential) (*Image, error)

	// RunPodSandbox creates the pod's network namespace, sets up its
	// network (CNI, host ports) and returns the sandbox with its IP.
	RunPodSandbox(ctx context.Context, cfg *SandboxConfig) (*Sandbox, error)
	// StopPodSandbox tears down the pod network; idempotent.
	StopPodSandbox(ctx context.Context, id string) error
	// RemovePodSandbox removes a stopped sandbox and whatever is left of
	// it; idempotent. Its containers must have been removed first.
	RemovePodSandbox(ctx context.Context, id string) error
	// ListPodSandboxes returns the sandboxes this runtime (in its
	// namespace) holds that match filter, ready or not.
	ListPodSandboxes(ctx context.Context, filter SandboxFilter) ([]*Sandbox, error)

	// CreateContainer creates (does not start) a container in a sandbox.
	CreateContainer(ctx context.Context, sandboxID string, cfg *ContainerConfig) (string, error)
	// StartContainer starts a created container.
	StartContainer(ctx context.Context, id string) error
	// StopContainer sends SIGTERM (or the image's stop signal), waits up
	// to timeout for the container to exit, then SIGKILLs it. Stopping an
	// exited container is a no-op.
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	// RemoveContainer removes an exited container; idempotent.
	RemoveContainer(ctx context.Context, id string) error
	// ListContainers returns the containers that match filter, in any
	// state.
	ListContainers(ctx context.Context, filter ContainerFilter) ([]*ContainerStatus, error)
	// ContainerStatus returns one container's status, or an error
	// wrapping ErrNotFound.
	ContainerStatus(ctx context.Context, id string) (*ContainerStatus, error)
	// ExecSync runs cmd in a running container and waits for it, at most
	// timeout (exec probes, preStop hooks). A command that ran returns its
	// exit code with a nil error; err is for failures to run it at all.
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int, err error)
	// Exec runs a command in a running container with its streams
	// attached (kubectl exec) until it exits or ctx is done, when it is
	// killed. A command that ran returns its exit code with a nil error.
	Exec(ctx context.Context, id string, opts ExecOptions) (exitCode int, err error)
	// ContainerStats reads a running container's resource usage from its
	// cgroup.
	ContainerStats(ctx context.Context, id string) (*ContainerStats, error)
	// Attach connects streams to a running container's own stdin and
	// output (kubectl attach, kubectl run -i) until the container exits
	// or ctx is done. Output is what the container writes from then on;
	// stdin reaches it only if it was created with Stdin.
	Attach(ctx context.Context, id string, opts AttachOptions) error
	// PortForward connects stream to port on the sandbox's loopback
	// (inside the pod's network namespace), as kubectl port-forward asks,
	// until both directions are done (see Forward).
	PortForward(ctx context.Context, sandboxID string, port int32, stream io.ReadWriteCloser) error
}

// Forward copies between a connection to a pod's port and a client's
// stream until both directions are done: the client's end of input is
// passed on as a half-close, and the stream is closed when the pod's side
// ends. It closes conn.
func Forward(conn net.Conn, stream io.ReadWriteCloser) error {
	defer conn.Close()
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stream)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		up <- err
	}()
	_, err := io.Copy(stream, conn)
	_ = stream.Close()
	if uerr := <-up; err == nil {
		err = uerr
	}
	return err
}

// RegistryCredential is a user name and password (or token) for one
// registry, from a pod's imagePullSecrets.
type RegistryCredential struct {
	// Host is the registry's host[:port], e.g. "registry.example.com";
	// Docker Hub is "docker.io".
	Host     string
	Username string
	Password string
}

// ExecOptions are the command and streams of an interactive exec.
type ExecOptions struct {
	Cmd []string
	// TTY gives the command a terminal; its output then all goes to
	// Stdout.
	TTY bool
	// Stdin, Stdout and Stderr are nil when not wanted. Stdin's EOF
	// closes the command's stdin.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Resize carries the terminal's size changes (TTY only).
	Resize <-chan TerminalSize
}

// ContainerStats is a container's resource usage at one moment.
type ContainerStats struct {
	// CPU is the CPU time the container used since it started.
	CPU time.Duration
	// MemoryWorkingSet is the memory in use less inactive file pages,
	// cAdvisor's working set (kubectl top's number).
	MemoryWorkingSet uint64
}

// AttachOptions are the streams of an attach; nil when not wanted.
type AttachOptions struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Resize carries the terminal's size changes (a container with TTY).
	Resize <-chan TerminalSize
}

// TerminalSize is a terminal's width and height in characters.
type TerminalSize struct {
	Width, Height uint16
}

// Status is the runtime's health, reported in the Node's Ready condition.
type Status struct {
	RuntimeReady bool
	NetworkReady bool
	// Reason says what is not ready, e.g. "no pod CIDR yet".
	Reason string
}

// Image is an image present in the runtime.
type Image struct {
	// ID is the image's config digest ("sha256:...").
	ID string
	// Ref is the reference it was asked for, normalized
	// ("docker.io/library/busybox:latest").
	Ref string
	// RepoDigest is "name@sha256:..." for containerStatuses.imageID.
	RepoDigest string
	Size       int64
}

// SandboxConfig describes a pod's sandbox.
type SandboxConfig struct {
	PodUID    string
	Namespace string
	Name      string
	// Attempt counts sandboxes of this pod, starting at 0.
	Attempt  uint32
	Hostname string
	// HostNetwork pods share the node's network namespace: no CNI.
	HostNetwork bool
	// Ports with HostPort != 0 are mapped on the node (CNI portmap).
	Ports []PortMapping
	// Labels are stored and returned by ListPodSandboxes (see the Label*
	// constants).
	Labels map[string]string
	// Annotations are the pod's annotations; the simulated runtime reads
	// its knobs from them.
	Annotations map[string]string
	// CgroupParent is the pod's cgroup, when the kubelet uses one.
	CgroupParent string
}

// PortMapping is one container port that is exposed on the node.
type PortMapping struct {
	// Protocol is "TCP", "UDP" or "SCTP".
	Protocol      string
	ContainerPort int32
	HostPort      int32
	HostIP        string
}

// SandboxState is whether a sandbox's network is up.
type SandboxState int

const (
	SandboxReady SandboxState = iota
	SandboxNotReady
)

// Sandbox is a pod's network namespace and its address.
type Sandbox struct {
	ID        string
	PodUID    string
	Namespace string
	Name      string
	Attempt   uint32
	State     SandboxState
	// IP is the pod IP (the node's IP for host-network pods).
	IP        string
	CreatedAt time.Time
	Labels    map[string]string
}

// ContainerConfig describes one container to create. Command and Args
// follow Kubernetes: Command replaces the image's ENTRYPOINT (and then its
// CMD is ignored), Args replaces its CMD; the runtime merges them with the
// image config. Env is final (the kubelet has resolved valueFrom and
// $(VAR) references), the runtime adds the image's env underneath.
type ContainerConfig struct {
	Name string
	// Attempt is the restart count of this container, starting at 0.
	Attempt    uint32
	Image      string
	Command    []string
	Args       []string
	Env        []KeyValue
	WorkingDir string
	Mounts     []Mount
	// PIDNamespaceOf is a running container whose process namespace this
	// one joins (an ephemeral container's target), "" for its own.
	PIDNamespaceOf string
	// Stdin keeps a stdin open for the container that attach writes to;
	// with StdinOnce it closes when the first attach's input ends. TTY
	// gives the container a terminal, which then has one output stream.
	Stdin, StdinOnce, TTY bool
	// LogPath is the absolute file the runtime appends stdout and stderr
	// to, in the CRI log format: "<RFC3339Nano> <stdout|stderr> <F|P> <text>\n".
	LogPath    string
	Resources  Resources
	RunAsUser  *int64
	RunAsGroup *int64
	// SupplementalGroups are added to the process's groups (the pod's
	// fsGroup and supplementalGroups).
	SupplementalGroups []int64
	// Labels and Annotations are stored and returned by the runtime.
	Labels      map[string]string
	Annotations map[string]string
}

// KeyValue is one environment variable.
type KeyValue struct {
	Key, Value string
}

// Mount binds a host path into the container.
type Mount struct {
	ContainerPath string
	HostPath      string
	ReadOnly      bool
}

// Resources are the container's cgroup limits; zero means unset.
type Resources struct {
	// CPUShares from requests.cpu (milliCPU*1024/1000, minimum 2).
	CPUShares int64
	// CPUQuota and CPUPeriod (microseconds) from limits.cpu.
	CPUQuota  int64
	CPUPeriod int64
	// MemoryLimit in bytes from limits.memory.
	MemoryLimit int64
}

// ContainerState is the lifecycle state of a container.
type ContainerState int

const (
	ContainerCreated ContainerState = iota
	ContainerRunning
	ContainerExited
	ContainerUnknown
)

func (s ContainerState) String() string {
	switch s {
	case ContainerCreated:
		return "created"
	case ContainerRunning:
		return "running"
	case ContainerExited:
		return "exited"
	}
	return "unknown"
}

// SandboxFilter selects sandboxes; empty fields match all.
type SandboxFilter struct {
	PodUID string
}

// ContainerFilter selects containers; empty fields match all.
type ContainerFilter struct {
	SandboxID string
	PodUID    string
}

// ContainerStatus is the truth about one container.
type ContainerStatus struct {
	ID        string
	SandboxID string
	PodUID    string
	Name      string
	Attempt   uint32
	State     ContainerState
	CreatedAt time.Time
	// StartedAt and FinishedAt are zero until the container started or
	// exited.
	StartedAt  time.Time
	FinishedAt time.Time
	ExitCode   int32
	// Reason is "OOMKilled" when the memory limit killed it, "Error" for a
	// non-zero exit, "Completed" for zero.
	Reason  string
	Message string
	// Image is the reference it was created from; ImageID the image's
	// RepoDigest (or ID).
	Image       string
	ImageID     string
	LogPath     string
	Labels      map[string]string
	Annotations map[string]string
}
