package deployment_test

import (
	"fmt"
	"log/slog"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/controllers/deployment"
)

// The controller manager builds the Deployment controller on its shared
// informer factory when it becomes leader, starts the factory and runs
// it until it loses the lease.
func Example() {
	build := func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
		return deployment.New(deployment.Config{Client: cs, Informers: f, Logger: log})
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
