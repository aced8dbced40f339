package routes_test

import (
	"context"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/kubelet/routes"
)

// An agent keeps routes to the other nodes' pods for as long as it runs;
// they stay when it stops, and go with Cleanup when the node is taken out
// of service.
func Example() {
	run := func(ctx context.Context, cs kubernetes.Interface) error {
		r, err := routes.New(routes.Config{Client: cs, NodeName: "node-a", Logger: slog.Default()})
		if err != nil {
			return err
		}
		return r.Run(ctx) // blocks until ctx is done; the routes stay
	}
	_ = run
}
