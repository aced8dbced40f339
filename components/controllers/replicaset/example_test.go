package replicaset_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/controllers/replicaset"
)

// The controller alone, outside the controller manager: it shares an
// informer factory that the caller starts after New registered its
// informers, and Run blocks until ctx ends.
func Example() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		log.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	// In a program, ctx comes from main's signal handling.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := replicaset.New(replicaset.Config{Client: cs, Informers: f})
	if err != nil {
		log.Fatal(err)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if err := c.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
