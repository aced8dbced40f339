package containerd

// What the external tests (package containerd_test: the kubelet end to
// end and its benchmark) share with the runtime's own.
var (
	RequireHost   = requireHost
	DemoArchive   = demoArchive
	CleanupHost   = cleanupHost
	RemoveCgroups = removeCgroups
	NewTestID     = newID
)

// RemoveMasquerade removes the node's masquerade chain.
func (r *Runtime) RemoveMasquerade() error { return r.removeMasquerade() }
