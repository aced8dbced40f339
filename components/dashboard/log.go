package dashboard

// Log attribute keys.
const (
	logKeyErr      = "err"
	logKeyResource = "resource"
	logKeyKind     = "kind"
	logKeyPage     = "page"
)
