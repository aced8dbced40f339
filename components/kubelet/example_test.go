package kubelet_test

import (
	"fmt"

	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
)

// A hollow node: a kubelet on the simulated runtime. `kiln server` builds
// the real one the same way, with the containerd runtime, the node's
// address and a serving certificate signed by the cluster CA; then it
// calls Run(ctx) in its errgroup.
func ExampleNew() {
	_, err := kubelet.New(kubelet.Config{
		NodeName: "hollow-1",
		Runtime:  simulated.New(simulated.Config{}),
		RootDir:  "/var/lib/kiln/hollow-1",
		NodeIP:   "10.0.0.5",
	})
	fmt.Println(err)
	// Output:
	// kubelet: Config.Client is required
	// kubelet: Config.TLS is required
}
