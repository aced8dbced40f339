package apiserver

import "log/slog"

// logger wraps the component's slog.Logger; keys are constants here.
type logger struct{ *slog.Logger }

const (
	logKeyObject = "object"
	logKeyVerb   = "verb"
	// logKeyClusterDNS is Config.ClusterDNS; logKeyClusterIP and
	// logKeyService say what holds or sits at another address.
	logKeyClusterDNS = "clusterDNS"
	logKeyClusterIP  = "clusterIP"
	logKeyService    = "service"
)
