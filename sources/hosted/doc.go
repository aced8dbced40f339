// Package hosted is the hosted source: kiln itself is the git remote. A
// hosted source keeps a bare repository (DATA_DIR/repos/<name>.git,
// created empty on first start), serves it over git's smart HTTP with
// package gitserver, and emits a sources.Snapshot of its branch whenever
// a push moves it, so the reconciler applies it like any other source.
//
//	src, err := hosted.New(hosted.Config{Name: "app", Dir: filepath.Join(dataDir, "repos", "app.git")})
//	if err != nil { ... }
//	h, err := hosted.NewHandler(hosted.HandlerConfig{
//		Sources:   []*hosted.Source{src},
//		Deployer:  rec,                                // *reconcile.Reconciler
//		Authorize: hosted.TokenAuthorizer(clientset), // a push is a write
//	})
//	mux.Handle(gitserver.PathPrefix, h) // git clone https://host:6443/git/app.git
//	go rec.Run(ctx)                     // runs src.Run, as for any source
//
// A push to the branch the source follows is a deploy, and its output is
// the deploy's report ("remote:" lines), in three steps:
//
//  1. Check, before the branch moves: the pushed commit is read as a git
//     source reads a fetched one (sources/git's rules and limits), then
//     rendered and dry-run server-side (Deployer.CheckPush). A commit
//     that fails is refused with the file and the reason; the branch
//     does not move and nothing in the cluster changes.
//  2. Apply, with the repository's push lock still held: the branch moves,
//     the source is triggered, and the push waits until the reconciler
//     has recorded the sync of the new commit (Deployer.WaitSynced). The
//     next push to the repository is checked only then, so two pushes
//     deploy one after the other, and one that raced another is refused
//     "fetch first".
//  3. Follow, without the lock: the rollout of what the sync created or
//     changed, until healthy, failed or the push wait (HandlerConfig.
//     PushWait, 60s) runs out (Deployer.WaitHealthy). One summary line
//     ends the output; the push fails unless the deploy succeeded.
//
// Push options: -o kiln.dry-run checks and reports what would change, and
// moves nothing (the push reports ok); -o kiln.no-wait returns after the
// apply; -o kiln.wait=DURATION replaces the push wait. Pushes to other
// branches and tags are stored without a deploy. The followed branch
// cannot be deleted.
package hosted
