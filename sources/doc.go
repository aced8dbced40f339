// Package sources defines what a GitOps source produces: immutable
// snapshots of a tree of files at one revision. Each kind lives in a
// subpackage (dir watches a local directory with fsnotify, git fetches a
// repository with go-git, hosted keeps a repository kiln serves and
// people push to); reconcile consumes the snapshots.
//
// A source never interprets the files; it only guarantees that a snapshot
// is complete, bounded in size and confined to its root (no symlink or
// path leads outside it), or carries an error saying why not.
package sources
