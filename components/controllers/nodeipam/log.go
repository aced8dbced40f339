package nodeipam

// Keys of log attributes.
const (
	logKeyComponent = "component"
	logKeyNode      = "node"
	logKeyCIDR      = "podCIDR"
	logKeyRange     = "clusterCIDR"
	logKeyError     = "err"
)
