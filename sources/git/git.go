package git

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"kiln.dev/kiln/sources"
)

// objectCacheBytes sizes the decoded-object cache of the clone. Snapshots
// read each blob once, so a small cache (go-git's default is 96 MiB per
// repository) only loses trees, which are cheap to decode again.
const objectCacheBytes = 16 * cache.MiByte

// maxPacks is how many fetched packs the clone collects before Run
// starts it afresh. Every fetch that brings objects adds a pack, go-git
// never repacks, and each lookup scans every pack index; a new shallow
// clone is one small pack again.
const maxPacks = 128

// minBackoff is the first retry delay after a failed fetch; it doubles
// up to Config.Interval.
const minBackoff = time.Second

// Source follows one ref of one git repository. Create it with New.
type Source struct {
	cfg     Config
	log     *slog.Logger
	ep      *transport.Endpoint // never holds a password
	url     string              // ep for errors and logs
	ref     ref
	subpath string
	// urlUser and urlPassword are the userinfo of Config.URL, if any.
	urlUser, urlPassword string

	transport transport.Transport
	// httpTransport is the http transport's connection pool, closed
	// when Run returns; nil for other schemes.
	httpTransport *http.Transport

	trigger chan struct{}
	running atomic.Bool

	// Owned by the Run goroutine.
	st            *filesystem.Storage
	dir           string // of st
	packs         int    // fetched into st
	maxPacks      int    // maxPacks; a test seam
	warnedHostKey bool
}

var _ sources.Source = (*Source)(nil)

// New applies defaults, checks cfg and returns a Source. It starts
// nothing and touches no file; the credentials file is first read by Run.
func New(cfg Config) (*Source, error) {
	cfg.setDefaults()
	if cfg.Name == "" {
		return nil, errors.New("git: name is required")
	}
	if cfg.WorkDir == "" {
		return nil, errors.New("git: workDir is required")
	}
	if cfg.Interval < 0 {
		return nil, errors.New("git: interval must not be negative")
	}
	ep, user, password, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	r, err := parseRef(cfg.Ref)
	if err != nil {
		return nil, err
	}
	sub, err := cleanSubpath(cfg.Subpath)
	if err != nil {
		return nil, err
	}
	if cfg.WorkDir, err = filepath.Abs(cfg.WorkDir); err != nil {
		return nil, fmt.Errorf("git: workDir: %w", err)
	}
	s := &Source{
		cfg:         cfg,
		ep:          ep,
		url:         displayURL(ep),
		ref:         r,
		subpath:     sub,
		urlUser:     user,
		urlPassword: password,
		trigger:     make(chan struct{}, 1),
		maxPacks:    maxPacks,
	}
	s.log = cfg.Logger.With(logKeyComponent, "sources/git", logKeySource, cfg.Name)
	switch ep.Protocol {
	case "file":
		if cfg.CredentialsFile != "" {
			return nil, fmt.Errorf("git: credentialsFile is not used with file:// URLs (%s)", s.url)
		}
		s.transport = localTransport{}
	case "ssh":
		if cfg.CredentialsFile == "" {
			return nil, fmt.Errorf("git: credentialsFile (a private key) is required for ssh URLs (%s)", s.url)
		}
		s.transport = gitssh.NewClient(nil)
	default:
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			s.httpTransport = t.Clone()
		} else {
			s.httpTransport = &http.Transport{Proxy: http.ProxyFromEnvironment}
		}
		s.transport = githttp.NewClient(&http.Client{Transport: boundedTransport{s.httpTransport}})
	}
	return s, nil
}

// Run clones into WorkDir and fetches every Interval and on Trigger,
// sending a Result for the first commit, for every new commit and for
// every failed fetch (retried after 1s, doubling up to Interval); after a
// failure, the next good fetch sends its snapshot again even if the
// commit did not change. A commit whose tree breaks a rule is sent once,
// as an error, until the ref moves. Run blocks until ctx is done and
// returns nil then; it returns an error only if WorkDir cannot be set up,
// or ErrRunning if called twice.
func (s *Source) Run(ctx context.Context, out chan<- sources.Result) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	s.dir = filepath.Join(s.cfg.WorkDir, "repo.git")
	if err := s.open(); err != nil {
		return err
	}
	defer s.close()
	s.log.Info("starting git source", logKeyURL, s.url, logKeyRef, s.cfg.Ref, logKeySubpath, s.subpath)
	if s.ep.Protocol == "http" && (s.cfg.CredentialsFile != "" || s.urlUser != "") {
		s.log.Warn("credentials are sent over plain http", logKeyURL, s.url)
	}

	var (
		ps      pollState
		backoff time.Duration
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			s.log.Info("stopping git source")
			return nil
		case <-timer.C:
		case <-s.trigger:
		}
		if s.packs >= s.maxPacks {
			s.log.Debug("starting the clone afresh", logKeyDir, s.dir)
			s.close()
			if err := s.open(); err != nil {
				return err
			}
		}
		res, fetchFailed := s.poll(ctx, &ps)
		if ctx.Err() != nil {
			// A fetch cut short by the stop is no failure to report.
			s.log.Info("stopping git source")
			return nil
		}
		if res != nil {
			select {
			case out <- *res:
			case <-ctx.Done():
				s.log.Info("stopping git source")
				return nil
			}
		}
		next := s.cfg.Interval
		if fetchFailed {
			backoff = min(max(2*backoff, minBackoff), s.cfg.Interval)
			next = backoff
			s.log.Debug("fetch failed; retrying", logKeyDelay, next)
		} else {
			backoff = 0
		}
		timer.Reset(next)
	}
}

// Trigger asks for a fetch now. It never blocks; triggers that arrive
// while a fetch is pending or running coalesce into one more fetch.
func (s *Source) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// pollState is what Run remembers of the Results it sent.
type pollState struct {
	// revision is that of the last snapshot, or snapshot error, sent.
	revision string
	// failed says the last Result sent was a fetch error.
	failed bool
}

// poll fetches and returns the Result to send, if any, and whether the
// fetch failed. ps is updated as though the Result were sent.
func (s *Source) poll(ctx context.Context, ps *pollState) (*sources.Result, bool) {
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	t, err := s.fetch(fctx)
	if err != nil {
		ps.failed = true
		return &sources.Result{Err: err}, true
	}
	rev := t.revision()
	if rev == ps.revision && !ps.failed {
		return nil, false
	}
	ps.revision, ps.failed = rev, false
	snap, err := s.snapshot(t)
	if err != nil {
		return &sources.Result{Err: fmt.Errorf("snapshot %s: %w", rev, err)}, false
	}
	s.log.Debug("new snapshot", logKeyRevision, rev)
	return &sources.Result{Snapshot: snap}, false
}

// open creates an empty bare repository at s.dir. A clone left by an
// earlier Run is removed first: its objects would be harmless, but its
// refs and shallow list could belong to another URL.
func (s *Source) open() error {
	dir := s.dir
	s.packs = 0
	if err := os.MkdirAll(s.cfg.WorkDir, 0o700); err != nil {
		return fmt.Errorf("git: workDir: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("git: clean workDir: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("git: workDir: %w", err)
	}
	// BoundOS keeps every path go-git writes inside dir (CVE-2023-49569
	// was ChrootOS, the default, following a symlink out).
	fs := osfs.New(dir, osfs.WithBoundOS())
	s.st = filesystem.NewStorageWithOptions(fs, cache.NewObjectLRU(objectCacheBytes), filesystem.Options{
		// ExclusiveAccess is left off: with it, go-git v5.19 caches the
		// pack list before the first fetch and never sees the new pack.
		LargeObjectThreshold: maxObjectBytes,
	})
	// A bare repository: no worktree, so no file of the repository is
	// ever written out; snapshots read blobs from the object store.
	if _, err := gogit.Init(s.st, nil); err != nil {
		return fmt.Errorf("git: init %s: %w", dir, err)
	}
	return nil
}

// close closes and removes the clone; Run calls it when it returns.
func (s *Source) close() {
	if s.st == nil {
		return
	}
	if err := s.st.Close(); err != nil {
		s.log.Warn("close repository", logKeyDir, s.dir, logKeyErr, err)
	}
	s.st = nil
	if err := os.RemoveAll(s.dir); err != nil {
		s.log.Warn("remove clone", logKeyDir, s.dir, logKeyErr, err)
	}
	if s.httpTransport != nil {
		s.httpTransport.CloseIdleConnections()
	}
}
