package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"

	"kiln.dev/kiln/config"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/dir"
	"kiln.dev/kiln/sources/git"
)

// newReconciler builds the fetcher of every configured source and the
// reconciler that applies their snapshots through the API at apiURL.
func newReconciler(cfg *config.Config, apiURL string, caPEM []byte, token string, log *slog.Logger) (*reconcile.Reconciler, error) {
	var srcs []reconcile.SourceConfig
	for _, s := range cfg.Sources {
		var f sources.Source
		var err error
		switch s.Kind {
		case config.SourceKindDir:
			f, err = dir.New(dir.Config{Name: s.Name, Path: s.Path, Logger: log})
		case config.SourceKindGit:
			work, werr := workDir(cfg.DataDir, s.Name)
			if werr != nil {
				return nil, werr
			}
			f, err = git.New(git.Config{Name: s.Name, URL: s.URL, Ref: s.Ref, Subpath: s.Subpath, Interval: s.Interval.Duration,
				CredentialsFile: s.CredentialsFile, WorkDir: work, Logger: log})
		default:
			err = fmt.Errorf("unknown kind %q", s.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		prune := s.Prune == nil || *s.Prune
		spec := reconcile.SourceSpec{Kind: s.Kind, Path: s.Path, URL: s.URL, Ref: s.Ref, Subpath: s.Subpath,
			Namespace: s.Namespace, Prune: prune, Drift: s.Drift}
		if s.Interval.Duration > 0 {
			spec.Interval = s.Interval.String()
		}
		srcs = append(srcs, reconcile.SourceConfig{Name: s.Name, Spec: spec, Fetcher: f})
	}
	rc := &rest.Config{Host: apiURL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 200, Burst: 400}
	return reconcile.New(reconcile.Config{RESTConfig: rc, Sources: srcs, Logger: log})
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
