package job

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyObject    = "object"
	logKeyWorkers   = "workers"
	logKeyError     = "err"
)
