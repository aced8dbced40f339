package git_test

import (
	"context"
	"log/slog"
	"path/filepath"

	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/git"
)

// serve follows a branch over https with a token; the consumer applies
// each snapshot and keeps the last good one applied on error. A webhook
// handler would call src.Trigger() to fetch before the next poll.
func serve(ctx context.Context, dataDir, workDirName string, apply func(*sources.Snapshot)) error {
	src, err := git.New(git.Config{
		Name:            "apps",
		URL:             "https://git.example.com/org/apps.git",
		Ref:             "main",
		Subpath:         "clusters/prod",
		CredentialsFile: "/etc/kiln/git-token",
		WorkDir:         filepath.Join(dataDir, "sources", workDirName), // random per source
	})
	if err != nil {
		return err
	}
	results := make(chan sources.Result)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for r := range results {
			if r.Err != nil {
				slog.Warn("source failed; keeping the last good snapshot", "error", r.Err)
				continue
			}
			apply(r.Snapshot)
		}
	}()
	err = src.Run(ctx, results) // blocks until ctx is done
	close(results)
	<-done
	return err
}

func Example() {
	// cmd/kiln calls serve with its signal-cancelled context.
	_ = serve
}
