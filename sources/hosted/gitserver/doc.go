// Package gitserver serves bare git repositories over git's smart HTTP
// protocol (protocol v0/v1, stateless RPC), in process, on go-git's object
// storage, pack encoder and pack parser: `git clone`, `git fetch` and
// `git push` work against it with the real git CLI, and no git binary is
// needed on the server.
//
//	srv, err := gitserver.New(gitserver.Config{
//		Repositories: map[string]gitserver.Repository{"app": {Dir: dir, Hooks: hooks}},
//		Authorize:    authorize, // a push is a write
//	})
//	if err != nil { ... }
//	mux.Handle(gitserver.PathPrefix, srv) // /git/app.git/...
//
// What it serves, per repository NAME: GET /git/NAME.git/info/refs with
// service=git-upload-pack or git-receive-pack (the ref advertisement),
// POST /git/NAME.git/git-upload-pack (clone, fetch) and POST
// /git/NAME.git/git-receive-pack (push). The ".git" suffix is optional.
// The dumb protocol is not served.
//
// Fetching: upload-pack advertises multi_ack_detailed, side-band-64k,
// ofs-delta and no-progress, negotiates common commits the way git's own
// upload-pack does in stateless RPC (ACK common per known have, NAK at the
// end of a round, never "ready"), and sends only objects reachable from
// advertised ref tips. Shallow clones and partial clone filters are not
// offered.
//
// Pushing: receive-pack advertises report-status, side-band-64k,
// delete-refs, atomic, push-options, ofs-delta and no-thin (so packs are
// self-contained). It stores the pack, checks that every new tip's objects
// are all present, then takes the repository's push lock and, for each
// command, compares the ref with the command's old value (a push that
// raced another is refused "fetch first"), asks Hooks.Check, and moves the
// ref by writing a new file and renaming it over the old one, so a crash
// leaves either value, never a torn one. Hooks.Apply runs while the lock
// is still held, Hooks.Follow after it is released; both may write
// "remote:" lines through Push.Progress while the client waits. The exit
// status of `git push` follows the report: any "ng" fails it.
//
// Concurrency: every request opens the repository afresh (go-git's
// storage is not safe for concurrent use), so reads never wait for a push
// and see its objects once its ref moved. Objects of a rejected push stay
// in the repository, unreferenced.
//
// Authentication and authorization are the caller's: Config.Authorize is
// asked before anything is read, with write set for receive-pack.
package gitserver
