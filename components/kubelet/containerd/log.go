package containerd

// Log attribute keys, shared by every file of the package.
const (
	logKeyComponent = "component"
	logKeyContainer = "container"
	logKeySandbox   = "sandbox"
	logKeyImage     = "image"
	logKeyFile      = "file"
	logKeyPID       = "pid"
	logKeyAddress   = "address"
	logKeyErr       = "err"
	logKeyExitCode  = "exitCode"
	logKeyReason    = "reason"
	logKeyDelay     = "delay"
	logKeyCount     = "count"
)
