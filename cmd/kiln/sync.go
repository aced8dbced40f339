package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/controllers"
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

// reconcilerLease is the Lease (in kube-system) under which one server at
// a time runs the GitOps reconciler.
const reconcilerLease = "kiln-reconciler"

// runLeading runs rec only while this server holds the Lease named lease,
// so that of several servers sharing a datastore one applies each commit
// and prunes, rather than all racing each other (and, with different
// clones, fighting over revisions). Its own Lease, not the controllers':
// a server may run sync with the controllers disabled, and a failing
// reconciler must not stop the controllers. Losing the Lease returns an
// error and the server exits, as the controller manager does.
func runLeading(ctx context.Context, rc *rest.Config, cfg *config.Config, lease string, rec controllers.Runnable, log *slog.Logger) error {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	m, err := controllers.New(leaderConfig(cfg, cs, lease, map[string]controllers.Builder{
		"reconciler": func(controllers.Shared) (controllers.Runnable, error) { return rec, nil },
	}, log))
	if err != nil {
		return err
	}
	return m.Run(ctx)
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
