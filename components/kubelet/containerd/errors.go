package containerd

import "errors"

var (
	// ErrNotReady is returned while containerd is not (yet) serving.
	ErrNotReady = errors.New("containerd is not ready")
	// ErrNoPodCIDR is returned by RunPodSandbox for a pod-network sandbox
	// before SetPodCIDR.
	ErrNoPodCIDR = errors.New("no pod CIDR yet")
	// ErrExecTimeout is returned by ExecSync when the command outlived its
	// timeout (it is killed).
	ErrExecTimeout = errors.New("exec timed out")
	// ErrAlreadyRunning is returned by a second call of Run.
	ErrAlreadyRunning = errors.New("already running")
)
