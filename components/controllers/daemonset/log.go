package daemonset

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyWorkers   = "workers"
)
