package deployment_test

import (
	"fmt"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/controllers/deployment"
)

// The controller manager builds the Deployment controller on its shared
// informer factory when it becomes leader, starts the factory and runs
// it until it loses the lease.
func Example() {
	build := func(s controllers.Shared) (controllers.Runnable, error) {
		return deployment.New(deployment.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
	}
	cfg := controllers.Config{Controllers: map[string]controllers.Builder{"deployment": build}}
	fmt.Println(len(cfg.Controllers))
	// Output: 1
}

func ExampleNew() {
	_, err := deployment.New(deployment.Config{})
	fmt.Println(err)
	// Output: deployment: Config.Client is required
}
