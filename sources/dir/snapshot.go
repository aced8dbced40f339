package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"kiln.dev/kiln/sources"
)

// Read takes one snapshot of the tree at root, exactly as a running
// Source would (same files, same limits and hostile-tree rules, same
// Revision), without watching it. `kiln diff` uses it to compare a local
// checkout with what a source applied. A read that loses a race with a
// change to the tree is retried as Run retries it; the error is otherwise
// ErrRoot, a *FileError naming the path, or ctx's error.
func Read(ctx context.Context, name, root string) (*sources.Snapshot, error) {
	for attempt := 0; ; attempt++ {
		snap, err := readOnce(ctx, name, root)
		if err == nil || !errors.Is(err, errVanished) || attempt >= maxVanishedRetries {
			return snap, err
		}
	}
}

func readOnce(ctx context.Context, name, root string) (*sources.Snapshot, error) {
	now := time.Now()
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRoot, err)
	}
	defer r.Close()
	files, err := readTree(ctx, r, defaultLimits(), nil)
	if err != nil {
		return nil, err
	}
	return &sources.Snapshot{Source: name, Revision: revision(files), Files: files, FetchedAt: now}, nil
}
