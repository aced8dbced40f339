package nodelifecycle

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyNode      = "node"
	logKeyPod       = "pod"
	logKeyTaint     = "taint"
	logKeyError     = "err"
)
