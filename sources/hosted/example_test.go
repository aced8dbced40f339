package hosted_test

import (
	"context"
	"log"
	"net/http"
	"path/filepath"

	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/hosted"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// A hosted source is a sources.Source like any other, plus its git
// server; kiln server wires them to the reconciler (the Deployer).
func Example() {
	src, err := hosted.New(hosted.Config{Name: "app", Dir: filepath.Join("/var/lib/kiln", "repos", "app.git")})
	if err != nil {
		log.Fatal(err)
	}
	var kube kubernetes.Interface // the API's clientset
	var deployer hosted.Deployer  // *reconcile.Reconciler
	h, err := hosted.NewHandler(hosted.HandlerConfig{
		Sources:   []*hosted.Source{src},
		Deployer:  deployer,
		Authorize: hosted.TokenAuthorizer(kube),
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gitserver.PathPrefix, h) // git push https://host/git/app.git main
	results := make(chan sources.Result)
	go func() {
		for r := range results {
			_ = r // the reconciler applies r.Snapshot
		}
	}()
	if err := src.Run(context.Background(), results); err != nil {
		log.Fatal(err)
	}
}
