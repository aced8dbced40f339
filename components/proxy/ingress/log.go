package ingress

// Log attribute keys.
const (
	logComponent = "component"
	logError     = "error"
	logIngress   = "ingress"
	logSecret    = "secret"
	logService   = "service"
	logAddrs     = "addrs"
	logRoutes    = "ingresses"
	logTarget    = "target"
	logHost      = "host"
)
