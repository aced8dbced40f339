package dashboard_test

import (
	"context"
	"log"
	"net/http"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/dashboard"
)

// The dashboard is a client of the API like any other: build it from a
// rest.Config, run it, and serve its handler (cmd/kiln mounts the git
// webhooks beside it on the same listener).
func ExampleNew() {
	run := func(ctx context.Context, rc *rest.Config) error {
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(rc)
		if err != nil {
			return err
		}
		d, err := dashboard.New(dashboard.Config{Client: cs, Dynamic: dyn})
		if err != nil {
			return err
		}
		go func() {
			if err := http.ListenAndServe("127.0.0.1:8080", d.Handler()); err != nil {
				log.Print(err)
			}
		}()
		return d.Run(ctx) // until ctx is done
	}
	_ = run
}
