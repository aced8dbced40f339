package containerd

import (
	"strings"
	"testing"
)

// What the external tests (package containerd_test: the kubelet end to
// end and its benchmark) share with the runtime's own.
var (
	RequireHost   = requireHost
	DemoArchive   = demoArchive
	CleanupHost   = cleanupHost
	RemoveCgroups = removeCgroups
	NewTestID     = newID
)

// PrivateRegistryWithDemo serves the demo image at REGISTRY/kiln/private:1
// behind Basic authentication and returns that reference and the
// credentials.
func PrivateRegistryWithDemo(t testing.TB) (ref, user, password string) {
	demoArchive(t)
	open, private := privateRegistry(t)
	pushImage(t, open, "kiln/private", "1", demoImg)
	return strings.TrimPrefix(private, "http://") + "/kiln/private:1", registryUser, registryPassword
}

// RemoveMasquerade removes the node's masquerade chain.
func (r *Runtime) RemoveMasquerade() error { return r.removeMasquerade() }
