// Package namespace is kiln's namespace controller: it empties a namespace
// that is being deleted, then finalizes it, as kube-controller-manager's
// namespace controller does.
//
// The API server keeps a deleted namespace, Terminating, while
// spec.finalizers holds "kubernetes". For such a namespace this controller
// discovers every namespaced resource that supports delete, deletes each
// collection in the namespace (propagation Background), lists until
// nothing remains (pods take their grace period; the kubelet removes
// them), records progress in the namespace's status.conditions like kube
// (NamespaceDeletionDiscoveryFailure, NamespaceDeletionContentFailure,
// NamespaceContentRemaining, ...), and finally removes "kubernetes" through
// the finalize subresource, after which the API server removes the
// namespace. A namespace is finalized only after a pass with no discovery
// or deletion error, so a group that fails discovery keeps it Terminating
// rather than leaking that group's objects, as in kube.
//
// It talks only to the API server: a Namespace informer from the shared
// factory, discovery, and the dynamic client for content.
//
//	c, err := namespace.New(namespace.Config{Client: cs, Dynamic: dyn, Informers: f})
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package namespace
