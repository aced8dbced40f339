package scheduler

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyPod       = "pod"
	logKeyNode      = "node"
	logKeyError     = "error"
	logKeyWorkers   = "workers"
	logKeyNodes     = "nodes"
	logKeyPods      = "pods"
	logKeyAttempts  = "attempts"
	logKeyReason    = "reason"
)
