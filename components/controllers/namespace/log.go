package namespace

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyNamespace = "namespace"
	logKeyError     = "err"
)
