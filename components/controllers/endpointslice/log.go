package endpointslice

// Log attribute keys.
const (
	logComponent = "component"
	logObject    = "object"
	logSlice     = "slice"
	logCount     = "count"
	logError     = "error"
	logRetries   = "retries"
)
