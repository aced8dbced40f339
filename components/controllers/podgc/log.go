package podgc

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyObject    = "object"
	logKeyReason    = "reason"
	logKeyInterval  = "interval"
	logKeyThreshold = "threshold"
	logKeyError     = "err"
)
