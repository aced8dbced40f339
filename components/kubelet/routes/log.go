package routes

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyNode      = "node"
	logKeyCIDR      = "podCIDR"
	logKeyGateway   = "via"
	logKeyReason    = "reason"
	logKeyCount     = "count"
	logKeyError     = "err"
	logKeyRetryIn   = "retryIn"
)
