package main

import (
	"log/slog"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/controllers/daemonset"
	"kiln.dev/kiln/components/controllers/deployment"
	"kiln.dev/kiln/components/controllers/endpointslice"
	"kiln.dev/kiln/components/controllers/garbagecollector"
	"kiln.dev/kiln/components/controllers/job"
	"kiln.dev/kiln/components/controllers/namespace"
	"kiln.dev/kiln/components/controllers/nodeipam"
	"kiln.dev/kiln/components/controllers/nodelifecycle"
	"kiln.dev/kiln/components/controllers/podgc"
	"kiln.dev/kiln/components/controllers/replicaset"
)

// newControllerManager builds the controller manager on its own clients,
// talking to the API server at rc like any other client.
func newControllerManager(rc *rest.Config, clusterCIDR string, log *slog.Logger) (*controllers.Manager, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, err
	}
	return controllers.New(controllers.Config{
		Client: cs,
		Logger: log,
		Controllers: map[string]controllers.Builder{
			"replicaset": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return replicaset.New(replicaset.Config{Client: cs, Informers: f, Logger: log})
			},
			"deployment": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return deployment.New(deployment.Config{Client: cs, Informers: f, Logger: log})
			},
			"endpointslice": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return endpointslice.New(endpointslice.Config{Client: cs, Informers: f, Logger: log})
			},
			"namespace": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return namespace.New(namespace.Config{Client: cs, Dynamic: dyn, Discovery: dc, Informers: f, Logger: log})
			},
			"daemonset": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return daemonset.New(daemonset.Config{Client: cs, Informers: f, Logger: log})
			},
			"job": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return job.New(job.Config{Client: cs, Informers: f, Logger: log})
			},
			"nodeipam": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return nodeipam.New(nodeipam.Config{Client: cs, Informers: f, ClusterCIDR: clusterCIDR, Logger: log})
			},
			"nodelifecycle": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return nodelifecycle.New(nodelifecycle.Config{Client: cs, Informers: f, Logger: log})
			},
			"podgc": func(cs kubernetes.Interface, f informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return podgc.New(podgc.Config{Client: cs, Informers: f, Logger: log})
			},
			"garbagecollector": func(cs kubernetes.Interface, _ informers.SharedInformerFactory, log *slog.Logger) (controllers.Runnable, error) {
				return garbagecollector.New(garbagecollector.Config{Client: cs, Dynamic: dyn, Discovery: dc, Logger: log})
			},
		},
	})
}

// adminRESTConfig is how the in-process components reach the API server:
// over its HTTPS address with the admin token, like any client.
func adminRESTConfig(apiURL string, caPEM []byte, token string) *rest.Config {
	return &rest.Config{Host: apiURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 200, Burst: 400}
}
