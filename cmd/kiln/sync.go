package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"kiln.dev/kiln/config"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/dir"
	"kiln.dev/kiln/sources/git"
	"kiln.dev/kiln/sources/hosted"
)

// newReconciler builds the fetcher of every configured source and the
// reconciler that applies their snapshots through the API at apiURL. It
// also returns the webhook of every git source, its secret read from
// webhookSecretFile, and the hosted sources, whose repositories the API
// port serves.
func newReconciler(cfg *config.Config, apiURL string, caPEM []byte, token string, log *slog.Logger) (*reconcile.Reconciler, map[string]reconcile.WebhookSource, []*hosted.Source, error) {
	var srcs []reconcile.SourceConfig
	var hostedSrcs []*hosted.Source
	hooks := map[string]reconcile.WebhookSource{}
	for _, s := range cfg.Sources {
		var f sources.Source
		var err error
		switch s.Kind {
		case config.SourceKindDir:
			f, err = dir.New(dir.Config{Name: s.Name, Path: s.Path, Logger: log})
		case config.SourceKindGit:
			work, werr := workDir(cfg.DataDir, s.Name)
			if werr != nil {
				return nil, nil, nil, werr
			}
			var gs *git.Source
			if gs, err = git.New(git.Config{Name: s.Name, URL: s.URL, Ref: s.Ref, Subpath: s.Subpath, Interval: s.Interval.Duration,
				CredentialsFile: s.CredentialsFile, WorkDir: work, Logger: log}); err == nil {
				f = gs
				hooks[s.Name], err = newWebhookSource(gs, s)
			}
		case config.SourceKindHosted:
			var hs *hosted.Source
			if hs, err = hosted.New(hosted.Config{Name: s.Name, Dir: filepath.Join(cfg.DataDir, "repos", s.Name+".git"),
				Branch: s.Ref, Subpath: s.Subpath, Logger: log}); err == nil {
				f = hs
				hostedSrcs = append(hostedSrcs, hs)
			}
		default:
			err = fmt.Errorf("unknown kind %q", s.Kind)
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		prune := s.Prune == nil || *s.Prune
		spec := reconcile.SourceSpec{Kind: s.Kind, Path: s.Path, URL: s.URL, Ref: s.Ref, Subpath: s.Subpath,
			Namespace: s.Namespace, Prune: prune, Drift: s.Drift}
		if s.Rollback == config.RollbackAuto {
			spec.Rollback = reconcile.RollbackAuto
		}
		if s.Interval.Duration > 0 {
			spec.Interval = s.Interval.String()
		}
		srcs = append(srcs, reconcile.SourceConfig{Name: s.Name, Spec: spec, Fetcher: f})
	}
	rc := adminRESTConfig(apiURL, caPEM, token)
	// A sync bounds its own requests in flight (16); the client-side
	// limit is only a guard, sized so that the first sync of 1,000
	// objects, about 2,000 requests, is not held back by it
	// (reconcile's BenchmarkSyncFull1000).
	rc.QPS, rc.Burst = 1000, 2000
	rec, err := reconcile.New(reconcile.Config{RESTConfig: rc, Sources: srcs, Logger: log})
	return rec, hooks, hostedSrcs, err
}

// workDir is a fresh, unpredictable directory for one git source, so one
// source cannot read another's files (Argo CVE-2023-40026).
func workDir(dataDir, name string) (string, error) {
	base := filepath.Join(dataDir, "sources")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return filepath.Join(base, name+"-"+hex.EncodeToString(b)), nil
}
