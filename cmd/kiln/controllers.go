package main

import (
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"

	"kiln.dev/kiln/components/controllers"
	"kiln.dev/kiln/components/controllers/cronjob"
	"kiln.dev/kiln/components/controllers/daemonset"
	"kiln.dev/kiln/components/controllers/deployment"
	"kiln.dev/kiln/components/controllers/endpointslice"
	"kiln.dev/kiln/components/controllers/garbagecollector"
	"kiln.dev/kiln/components/controllers/horizontalpodautoscaler"
	"kiln.dev/kiln/components/controllers/job"
	"kiln.dev/kiln/components/controllers/namespace"
	"kiln.dev/kiln/components/controllers/nodeipam"
	"kiln.dev/kiln/components/controllers/nodelifecycle"
	"kiln.dev/kiln/components/controllers/persistentvolume"
	"kiln.dev/kiln/components/controllers/podgc"
	"kiln.dev/kiln/components/controllers/replicaset"
	"kiln.dev/kiln/components/controllers/serviceaccount"
	"kiln.dev/kiln/components/controllers/statefulset"
	"kiln.dev/kiln/components/scheduler"
	"kiln.dev/kiln/config"
)

// newControllerManager builds the controller manager on its own clients,
// talking to the API server at rc like any other client. The scheduler
// runs in it, under the same leader election. Components cfg disables are
// left out.
func newControllerManager(rc *rest.Config, cfg *config.Config, log *slog.Logger) (*controllers.Manager, error) {
	clusterCIDR := cfg.ClusterCIDR
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
	builders := map[string]controllers.Builder{
		"replicaset": func(s controllers.Shared) (controllers.Runnable, error) {
			return replicaset.New(replicaset.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"deployment": func(s controllers.Shared) (controllers.Runnable, error) {
			return deployment.New(deployment.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"endpointslice": func(s controllers.Shared) (controllers.Runnable, error) {
			return endpointslice.New(endpointslice.Config{Client: s.Client, Informers: s.Informers, Logger: s.Logger})
		},
		"namespace": func(s controllers.Shared) (controllers.Runnable, error) {
			return namespace.New(namespace.Config{Client: s.Client, Dynamic: dyn, Discovery: dc, Informers: s.Informers, Logger: s.Logger})
		},
		"daemonset": func(s controllers.Shared) (controllers.Runnable, error) {
			return daemonset.New(daemonset.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"statefulset": func(s controllers.Shared) (controllers.Runnable, error) {
			return statefulset.New(statefulset.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"cronjob": func(s controllers.Shared) (controllers.Runnable, error) {
			return cronjob.New(cronjob.Config{Client: s.Client, Informers: s.Informers, Logger: s.Logger})
		},
		"job": func(s controllers.Shared) (controllers.Runnable, error) {
			return job.New(job.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"horizontalpodautoscaler": func(s controllers.Shared) (controllers.Runnable, error) {
			// Pod usage comes from metrics.k8s.io on the same API server.
			mcs, err := metricsclient.NewForConfig(rc)
			if err != nil {
				return nil, err
			}
			return horizontalpodautoscaler.New(horizontalpodautoscaler.Config{Client: s.Client, Metrics: mcs, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"nodeipam": func(s controllers.Shared) (controllers.Runnable, error) {
			return nodeipam.New(nodeipam.Config{Client: s.Client, Informers: s.Informers, ClusterCIDR: clusterCIDR, Logger: s.Logger})
		},
		"nodelifecycle": func(s controllers.Shared) (controllers.Runnable, error) {
			return nodelifecycle.New(nodelifecycle.Config{Client: s.Client, Informers: s.Informers, Events: s.Events,
				GracePeriod: cfg.NodeMonitorGracePeriod.Duration, Logger: s.Logger})
		},
		"serviceaccount": func(s controllers.Shared) (controllers.Runnable, error) {
			return serviceaccount.New(serviceaccount.Config{Client: s.Client, Informers: s.Informers, RootCA: rc.CAData, Logger: s.Logger})
		},
		"persistentvolume": func(s controllers.Shared) (controllers.Runnable, error) {
			return persistentvolume.New(persistentvolume.Config{Client: s.Client, Informers: s.Informers, Events: s.Events, Logger: s.Logger})
		},
		"podgc": func(s controllers.Shared) (controllers.Runnable, error) {
			return podgc.New(podgc.Config{Client: s.Client, Informers: s.Informers, Logger: s.Logger})
		},
		"garbagecollector": func(s controllers.Shared) (controllers.Runnable, error) {
			return garbagecollector.New(garbagecollector.Config{Client: s.Client, Dynamic: dyn, Discovery: dc, Logger: s.Logger})
		},
	}
	if cfg.Disabled(config.ComponentControllers) {
		clear(builders)
	}
	if !cfg.Disabled(config.ComponentScheduler) {
		// Binding 1,000 pods a second needs its own client with room for it.
		src := rest.CopyConfig(rc)
		src.QPS, src.Burst = 5000, 10000
		// Protobuf bodies are cheaper to encode than JSON at that rate.
		src.ContentType = "application/vnd.kubernetes.protobuf"
		src.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
		scs, err := kubernetes.NewForConfig(src)
		if err != nil {
			return nil, err
		}
		builders["scheduler"] = func(s controllers.Shared) (controllers.Runnable, error) {
			return scheduler.New(scheduler.Config{Client: scs, Informers: s.Informers, Logger: s.Logger})
		}
	}
	return controllers.New(leaderConfig(cfg, cs, controllers.DefaultLeaseName, builders, log))
}

// leaderConfig is the manager configuration of one Lease: the controllers
// and scheduler run under controllers.DefaultLeaseName, the GitOps
// reconciler under reconcilerLease, with the timings of
// cfg.LeaderElection. Servers sharing a datastore campaign for both.
func leaderConfig(cfg *config.Config, cs kubernetes.Interface, lease string, builders map[string]controllers.Builder, log *slog.Logger) controllers.Config {
	le := cfg.LeaderElection
	return controllers.Config{
		Client:        cs,
		Controllers:   builders,
		Identity:      leaderIdentity(cfg),
		LeaseName:     lease,
		LeaseDuration: le.LeaseDuration.Duration,
		RenewDeadline: le.RenewDeadline.Duration,
		RetryPeriod:   le.RetryPeriod.Duration,
		Logger:        log,
	}
}

// leaderIdentity names this server in the Leases it holds: node name and
// pid, so that two servers on one host differ, and a restarted server is a
// new holder rather than one that resumes a Lease it no longer renews.
func leaderIdentity(cfg *config.Config) string {
	return fmt.Sprintf("%s_%d", cfg.NodeName, os.Getpid())
}

// adminRESTConfig is how the in-process components reach the API server:
// over its HTTPS address with the admin token, like any client.
func adminRESTConfig(apiURL string, caPEM []byte, token string) *rest.Config {
	return &rest.Config{Host: apiURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 200, Burst: 400}
}
