package endpointslice

// Log attribute keys.
const (
	logComponent = "component"
	logObject    = "object"
	logCount     = "count"
	logError     = "error"
	logRetries   = "retries"
)
