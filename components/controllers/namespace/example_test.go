package namespace_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/controllers/namespace"
)

// The controller alone, outside the controller manager: it shares an
// informer factory that the caller starts after New registered the
// Namespace informer, and Run blocks until ctx ends.
func Example() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		log.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	// In a program, ctx comes from main's signal handling.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := namespace.New(namespace.Config{Client: cs, Dynamic: dyn, Informers: f})
	if err != nil {
		log.Fatal(err)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
