package kubelet

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyNode      = "node"
	logKeyPod       = "pod"
	logKeyContainer = "container"
	logKeyError     = "err"
)
