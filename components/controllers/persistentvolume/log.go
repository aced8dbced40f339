package persistentvolume

// Keys of log attributes.
const (
	logKeyComponent = "component"
)
