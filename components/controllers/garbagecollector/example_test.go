package garbagecollector_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/controllers/garbagecollector"
)

// The collector alone, outside the controller manager: Run discovers
// every deletable resource, watches it, and blocks until ctx ends.
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

	gc, err := garbagecollector.New(garbagecollector.Config{Client: cs, Dynamic: dyn})
	if err != nil {
		log.Fatal(err)
	}
	if err := gc.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
