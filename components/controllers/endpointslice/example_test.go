package endpointslice_test

import (
	"context"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/controllers/endpointslice"
)

// The controller manager builds the controller on its shared informer
// factory, starts the factory, and runs the controller until it stops
// leading.
func Example() {
	run := func(ctx context.Context, cs kubernetes.Interface) error {
		f := informers.NewSharedInformerFactory(cs, 0)
		c, err := endpointslice.New(endpointslice.Config{Client: cs, Informers: f})
		if err != nil {
			return err
		}
		f.Start(ctx.Done())
		defer f.Shutdown()
		return c.Run(ctx) // blocks until ctx is done
	}
	_ = run
}
