package horizontalpodautoscaler

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyObject    = "object"
	logKeyTarget    = "target"
	logKeyFrom      = "from"
	logKeyTo        = "to"
	logKeyReason    = "reason"
)
