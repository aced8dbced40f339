// Package endpointslice is kiln's EndpointSlice controller: for every
// Service with a selector it keeps the discovery.k8s.io/v1 EndpointSlices
// and the legacy v1 Endpoints object (which `kubectl describe service`
// still reads) in step with the pods the selector matches, as
// kube-controller-manager's endpointslice and endpoints controllers do.
//
// It talks only to the API server: informers on Services, Pods,
// EndpointSlices and Endpoints from a shared informer factory feed a
// rate-limited workqueue of Service keys ("namespace/name"), and sync
// recomputes one Service's slices and Endpoints from the caches and writes
// the difference.
//
// What it owns:
//   - EndpointSlices labelled endpointslice.kubernetes.io/managed-by:
//     endpointslice-controller.k8s.io and kubernetes.io/service-name:
//     <service>, whose controller owner reference is that Service. Slices
//     from other managers, and slices whose controller is not the Service,
//     are never touched. There is one set of slices per address type and
//     resolved port set, with at most Config.MaxEndpointsPerSlice
//     endpoints each; a Service that selects no pods keeps one empty
//     placeholder slice, as kube does.
//   - The Endpoints object named after the Service, labelled
//     endpointslice.kubernetes.io/skip-mirror: "true". It is deleted with
//     the Service only when it carries that label, so a hand-written
//     Endpoints object is not removed.
//
// Services without a selector (and ExternalName Services) get no slices:
// their endpoints are user-managed. Slices this controller made earlier
// (the selector was removed) are deleted; their Endpoints object is left
// as is, as kube leaves it.
//
// Nodes are not watched: endpoints carry nodeName but no zone.
//
// Usage, as the controller manager runs it:
//
//	c, err := endpointslice.New(endpointslice.Config{Client: cs, Informers: f})
//	if err != nil { ... }
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package endpointslice
