package garbagecollector

// Keys of log attributes.
const (
	logKeyComponent   = "component"
	logKeyObject      = "object"
	logKeyOwner       = "owner"
	logKeyResource    = "resource"
	logKeyPropagation = "propagation"
	logKeyWorkers     = "workers"
	logKeyCount       = "count"
	logKeyTotal       = "total"
	logKeyError       = "err"
)
