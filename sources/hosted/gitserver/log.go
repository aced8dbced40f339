package gitserver

// Log attribute keys.
const (
	logKeyComponent = "component"
	logKeyRepo      = "repo"
	logKeyUser      = "user"
	logKeyRef       = "ref"
	logKeyOld       = "old"
	logKeyNew       = "new"
	logKeyResult    = "result"
	logKeyErr       = "error"
	logKeyMS        = "ms"
	logKeyObjects   = "objects"
)
