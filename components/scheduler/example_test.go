package scheduler_test

import (
	"context"
	"log"
	"os"
	"os/signal"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/scheduler"
)

// The scheduler alone, outside the controller manager: it registers its
// informers in New, the caller starts the factory, and Run blocks until
// ctx ends. Binding many pods a second needs a client with a high QPS.
func Example() {
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		log.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 5000, 10000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	// In a program, ctx comes from main's signal handling.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	f := informers.NewSharedInformerFactory(cs, 0)
	s, err := scheduler.New(scheduler.Config{Client: cs, Informers: f})
	if err != nil {
		log.Fatal(err)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if err := s.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
