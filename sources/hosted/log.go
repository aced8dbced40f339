package hosted

// Log attribute keys.
const (
	logKeyComponent = "component"
	logKeySource    = "source"
	logKeyDir       = "dir"
	logKeyRevision  = "revision"
	logKeyErr       = "error"
)
