package daemonset

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyObject    = "object"
	logKeyWorkers   = "workers"
	logKeyError     = "err"
)
