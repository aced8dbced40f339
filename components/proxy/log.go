package proxy

// Log attribute keys.
const (
	logComponent     = "component"
	logError         = "error"
	logServices      = "services"
	logDuration      = "duration"
	logRetryIn       = "retryIn"
	logMinSyncPeriod = "minSyncPeriod"
	logSyncPeriod    = "syncPeriod"
)
