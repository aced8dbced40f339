package worker

// Keys of log attributes, as the controllers' own log.go spell them.
const (
	logKeyObject = "object"
	logKeyError  = "err"
)
