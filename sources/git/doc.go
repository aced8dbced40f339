// Package git is the git source: it follows one branch, tag or commit of
// a repository with go-git and emits a sources.Snapshot of the files
// under a subpath whenever the commit changes. No git binary is needed:
// http(s) and ssh use go-git's transports, and file:// is served in
// process by go-git's own upload-pack.
//
//	src, err := git.New(git.Config{
//		Name:    "apps",
//		URL:     "https://git.example.com/org/apps.git",
//		Ref:     "main",
//		Subpath: "clusters/prod",
//		WorkDir: filepath.Join(dataDir, "sources", random),
//	})
//	if err != nil { ... }
//	results := make(chan sources.Result)
//	go consume(results)         // reconcile
//	err = src.Run(ctx, results) // blocks until ctx is done
//
// What it owns: a bare repository in Config.WorkDir/repo.git, created at
// Run, started afresh after every 128 fetched packs (go-git never
// repacks) and removed when Run returns. It talks to the remote only, and
// writes nothing but go-git's object store and its own ref: there is no
// worktree, and snapshots read blobs straight from the commit's trees, so
// no file, path or symlink from the repository reaches the disk.
//
// How it fetches: one upload-pack session per poll reads the remote's
// refs, and asks for a pack only when the followed ref points at an
// object the clone lacks, with depth 1 where the server supports it
// (http, ssh; go-git's in-process file:// server does not, so file://
// fetches history). It wants exactly one hash, offers its own refs as
// haves, fetches no tags it was not asked for and never recurses into
// submodules. Ref names the server sends are validated before use.
// A force-push is fetched like any other move of the ref.
//
// What a snapshot holds: the regular files (blob modes 100644, 100755)
// under the subpath, sorted, with paths relative to it. Dot-folders are
// left out, submodule entries are skipped, and a symlink is replaced by
// the file it points at, which must be a file of the snapshot itself
// (resolved lexically; absolute, escaping, dangling, looping or
// directory targets are errors naming the link). sources.MaxFileBytes,
// MaxTotalBytes and MaxFiles are checked against blob sizes before any
// blob is read.
//
// Errors: a failed fetch is a Result whose Err wraps ErrFetch and names
// the URL without userinfo; no token, password or key ever appears in an
// error or a log line. A tree that breaks a rule is a Result whose Err is
// a *FileError. Neither is ever an empty snapshot: the consumer keeps the
// last good one.
package git
