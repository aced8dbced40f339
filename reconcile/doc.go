// Package reconcile turns a source's snapshot into the objects kiln applies,
// and applies them.
//
// Render is the first step: it parses every manifest of a snapshot
// (*.yaml, *.yml and *.json files, multi-document YAML, kind: List) and
// builds every kustomization directory with kustomize, in memory, over the
// snapshot's files only. It validates each object: apiVersion, kind and a
// fixed metadata.name are required; the kind must be served by the cluster
// (RenderOptions.Scope) or defined by a CRD in the snapshot; kinds client-go
// knows are decoded strictly, so an unknown or duplicate field is an error
// naming its path; objects of kiln's own group are refused; namespaced
// objects without a namespace get the default one and cluster-scoped
// objects may not have one. It returns the objects in apply order
// (namespaces and CRDs first, workloads late), or a *RenderError that lists
// every problem by file, line, document, object and field. It never returns
// a partial result, so a bad revision can never cause a partial apply or a
// prune (RELIABILITY promise 13).
//
// Render treats the snapshot as hostile input. It reads nothing but the
// snapshot (no disk, no network, no git, no plugins, no Helm), refuses
// binary files, YAML alias bombs and deep nesting before anything expands
// them, checks kustomization references before kustomize follows them, and
// never puts a value from a document into a message, so a Secret cannot
// leak through an error (RELIABILITY (b) 2, 3, 6, 7, 9, 14, 15, 20).
//
// It talks to no one: the caller supplies the snapshot (package sources)
// and the scope of kinds (from the API server's discovery).
//
//	objs, err := reconcile.Render(snap, reconcile.RenderOptions{Scope: discovery.Scope})
//	var rerr *reconcile.RenderError
//	if errors.As(err, &rerr) {
//		// Keep the last good revision applied; report rerr.Problems.
//	}
//	for _, o := range objs {
//		// Apply o.Obj, in order.
//	}
//
// WebhookHandler serves POST /hooks/git/<source> for GitHub, GitLab,
// Gitea/Forgejo and plain POSTs: an authenticated push calls the source's
// Trigger, so a git source fetches at once instead of at its next poll.
// It caps bodies and rate-limits each source (RELIABILITY (b) 21).
//
// Diff answers "what would a sync of these objects do?" without writing:
// the same three-way patches as a server-side dry run, compared with the
// live objects, and the inventory entries a prune would delete. Secret
// values never appear in its result. `kiln diff` is built on it.
//
// CheckPush, WaitSynced and WaitHealthy are what a push to a hosted
// source (sources/hosted) asks before and after its branch moves: a
// render and dry run of the pushed commit, the sync's record, and the
// rollout of what it changed (push.go). A source with rollback: auto
// re-applies its last healthy revision when a newer one turns Degraded
// (rollback.go).
package reconcile
