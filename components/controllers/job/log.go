package job

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyWorkers   = "workers"
)
