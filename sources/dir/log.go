package dir

// Log attribute keys.
const (
	logKeyComponent = "component"
	logKeySource    = "source"
	logKeyPath      = "path"
	logKeyError     = "error"
	logKeyInterval  = "interval"
	logKeyRevision  = "revision"
	logKeyFiles     = "files"
)
