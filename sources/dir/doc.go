// Package dir is the directory source: it watches a local directory of
// Kubernetes YAML and emits a sources.Snapshot of it whenever its content
// changes. It owns only the reading of the tree; reconcile consumes the
// snapshots and decides which files are manifests.
//
//	src, err := dir.New(dir.Config{Name: "local", Path: "/srv/cluster"})
//	if err != nil {
//		return err
//	}
//	results := make(chan sources.Result)
//	go func() { errc <- src.Run(ctx, results) }()
//	for res := range results { ... }
//
// # What a snapshot holds
//
// Every regular file under the root, whatever its name, with Path
// slash-separated and relative to the root, sorted by Path. Directories
// whose name starts with "." (.git, .github, ...) are skipped at any
// depth; regular dot-files are kept, since a file such as .kiln.yaml may
// matter to a consumer, and reconcile filters by name anyway. Any other
// dot-named entry (a socket, a FIFO, a symlink that does not qualify, see
// below) is skipped like a dot-folder. An empty directory yields an empty
// snapshot, not an error: telling "empty" from "broken" is what lets
// reconcile refuse to prune on a broken read.
//
// The Revision is "sha256:" and the hex SHA-256 of, for each file in
// Path order, its path, a NUL byte, its length as a big-endian uint64 and
// its content. It depends on content only: a rewrite with the same bytes,
// a touch or a chmod gives the same revision, and nothing is sent.
//
// # Hostile trees
//
// A tree that cannot be read safely yields a Result whose Err names the
// path (a *FileError) and no snapshot; the consumer keeps the last good
// one. Files are opened through an os.Root, so no path, symlink or race
// reads outside the root. The walk
//   - never follows a symlink to a directory, and follows a symlink to a
//     file only when that file is itself in the snapshot (inside the root,
//     not in a dot-folder); any other symlink is ErrSymlink. A dot-named
//     symlink that does not qualify is skipped instead, like a dot-folder
//     (Emacs lock files ".#name" are dangling symlinks);
//   - never opens a FIFO, socket or device (ErrNotRegular), and opens
//     files non-blocking in case one is swapped in after listing;
//   - checks sizes before reading and reads through a limit:
//     sources.MaxFileBytes (ErrFileTooLarge), sources.MaxTotalBytes
//     (ErrTreeTooLarge), sources.MaxFiles (ErrTooManyFiles), at most
//     2×MaxFiles directory entries in all (ErrTooManyEntries), listed in
//     batches, and at most 64 levels of directories (ErrTooDeep);
//   - reads hard links as the files they are: they are inside the root by
//     path.
//
// A root that is deleted, replaced by a file or unreadable yields ErrRoot;
// the source polls until the root is back, then snapshots it again.
//
// # Watching
//
// fsnotify (inotify on Linux) watches every directory that is read,
// including ones created later: the read that follows a directory's
// Create event adds the watch before listing it. Files written into a
// directory before it was watched raise no event, so a read that had to
// add watches is not sent: it is done again after another quiet Debounce
// (at most three times in a row), so that `git checkout` filling new
// directories yields one snapshot, not half a tree and then the rest.
// Changes are debounced (Config.Debounce after the last event, at most
// 10×Debounce after the first) into one read of the whole tree. When
// fsnotify cannot be used (no inotify instance, or the watch limit is
// reached), the source logs a warning and re-reads the tree every
// Config.PollInterval instead.
//
// # Incremental reads
//
// A read walks and lists the whole tree, but opens and reads only the
// regular files that may have changed since the last complete read: those
// whose stat (type and mode, size, mtime, ctime, device and inode, taken
// without following symlinks) differs, those fsnotify named since (or
// whose directory it named), and those changed less than two seconds
// before the read that kept them, for which the kernel's coarse ctime
// clock proves nothing. The others are taken from memory. The snapshot,
// its Revision included, is byte for byte what a full read gives: the
// walk, its order, its checks and limits are the same, and symlinks are
// resolved afresh every time. Polling, a failed read, a lost root and an
// fsnotify error (events may be lost) make the next read a full one.
// A Result is sent when the revision differs from the last one sent, or
// when a read's error differs from the last one sent; the first read is
// always sent. Trigger forces a read without waiting for an event.
package dir
