package dns

// Log attribute keys.
const (
	logComponent = "component"
	logError     = "error"
	logName      = "name"
	logAddrs     = "addrs"
	logUpstreams = "upstreams"
	logDomain    = "domain"
)
