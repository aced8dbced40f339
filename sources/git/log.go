package git

// Log attribute keys.
const (
	logKeyComponent = "component"
	logKeySource    = "source"
	logKeyURL       = "url"
	logKeyRef       = "ref"
	logKeySubpath   = "subpath"
	logKeyRevision  = "revision"
	logKeyFile      = "file"
	logKeyDir       = "dir"
	logKeyDelay     = "delay"
	logKeyErr       = "error"
)
