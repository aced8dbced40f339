package sources

import (
	"context"
	"time"
)

// Limits that keep a hostile tree from exhausting memory. A tree over a
// limit yields a snapshot error naming the file; nothing is applied.
const (
	// MaxFileBytes is the largest file a snapshot holds.
	MaxFileBytes = 4 << 20
	// MaxTotalBytes bounds the sum of all files of a snapshot.
	MaxTotalBytes = 64 << 20
	// MaxFiles bounds the number of files of a snapshot.
	MaxFiles = 20000
	// MaxContextBytes and MaxContextFiles bound Snapshot.Context. Files
	// past them are left out, not an error: the rest of a monorepo must
	// not stop the sync of its subpath.
	MaxContextBytes = 16 << 20
	MaxContextFiles = 5000
)

// Commit describes the commit a git snapshot was taken from.
type Commit struct {
	Hash    string
	Message string
	Author  string
	Time    time.Time
}

// File is one regular file of a snapshot.
type File struct {
	// Path is slash-separated and relative to the snapshot root
	// (the source's subpath), never starting with "/" or "..".
	Path string
	Data []byte
}

// Snapshot is one immutable revision of a source.
type Snapshot struct {
	// Source is the name of the source that produced it.
	Source string
	// Revision identifies the content: "main@sha1:<hash>" for git,
	// "sha256:<hash of sorted paths and contents>" for a directory.
	Revision string
	// Files are the regular files under the root, sorted by Path.
	// Dot-folders (.git, .github...) are left out.
	Files []File
	// Subpath is the directory of the repository the root is ("" for
	// the whole repository).
	Subpath string
	// Context are the repository's files outside the root, for the
	// kustomizations under the root that build on them ("../base"):
	// paths are relative to the root, so each starts with "../". They
	// are never rendered on their own, and only what a kustomization
	// refers to is read. Within MaxContextBytes and MaxContextFiles;
	// symlinks and dot-folders are left out.
	Context []File
	// Commit is set for git snapshots.
	Commit *Commit
	// FetchedAt is when the snapshot was taken.
	FetchedAt time.Time
}

// Result is what a source emits: a new snapshot, or the error of a failed
// fetch or read (the consumer keeps the last good snapshot applied).
type Result struct {
	Snapshot *Snapshot
	Err      error
}

// Source is one kind of source.
type Source interface {
	// Run watches or polls until ctx is done and sends a Result whenever the
	// content changes or a fetch fails; it sends the first Result as soon
	// as it can. It blocks; it returns nil on a clean stop. Sends block, so
	// a slow consumer slows the source instead of losing results.
	Run(ctx context.Context, out chan<- Result) error
	// Trigger asks for an immediate fetch (a webhook); it never blocks.
	Trigger()
}

// Revisions is implemented by a source that can read an earlier revision
// again: the hosted source keeps every commit pushed to it. After a
// restart, or on another server after a failover, a rollback uses it to
// re-apply the last healthy revision recorded in the Source's status.
type Revisions interface {
	// SnapshotAt returns the snapshot of revision, as Run sent it then.
	SnapshotAt(revision string) (*Snapshot, error)
}
