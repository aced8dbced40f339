package hosted

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/git"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// DefaultBranch is the branch a hosted source deploys when Config.Branch
// is empty.
const DefaultBranch = "main"

// Config configures a hosted source.
type Config struct {
	// Name is the source's name; it names the repository in URLs
	// (/git/<name>.git) and is copied into every Snapshot. Required.
	Name string
	// Dir is the bare repository, DATA_DIR/repos/<name>.git; it is
	// created empty, with HEAD naming Branch, when it does not exist.
	// Required.
	Dir string
	// Branch is the branch deployed (a short name); empty means
	// DefaultBranch.
	Branch string
	// Subpath limits snapshots to a directory of the repository, as for a
	// git source.
	Subpath string
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
}

// Source is a hosted repository as a sources.Source. Create it with New.
type Source struct {
	cfg     Config
	log     *slog.Logger
	branch  plumbing.ReferenceName
	trigger chan struct{}
	running atomic.Bool
	// initMu serializes Init: Run and NewHandler both call it.
	initMu sync.Mutex
}

var _ sources.Source = (*Source)(nil)

// New checks cfg and returns a Source. It touches no file: Init, Run or
// NewHandler create the repository.
func New(cfg Config) (*Source, error) {
	if cfg.Name == "" {
		return nil, errors.New("hosted: name is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("hosted: dir is required")
	}
	if cfg.Branch == "" {
		cfg.Branch = DefaultBranch
	}
	branch := plumbing.NewBranchReferenceName(cfg.Branch)
	if strings.HasPrefix(cfg.Branch, "refs/") || branch.Validate() != nil {
		return nil, fmt.Errorf("hosted: branch %q is not a valid branch name", cfg.Branch)
	}
	if s := cfg.Subpath; s != "" && (path.IsAbs(s) || strings.ContainsAny(s, "\\\x00") || slicesContains(strings.Split(s, "/"), "..")) {
		return nil, fmt.Errorf("hosted: subpath %q must be a relative path inside the repository", s)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("hosted: dir: %w", err)
	}
	cfg.Dir = dir
	return &Source{
		cfg:     cfg,
		log:     cfg.Logger.With(logKeyComponent, "sources/hosted", logKeySource, cfg.Name),
		branch:  branch,
		trigger: make(chan struct{}, 1),
	}, nil
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Name is the source's name.
func (s *Source) Name() string { return s.cfg.Name }

// Dir is the repository's directory.
func (s *Source) Dir() string { return s.cfg.Dir }

// Branch is the full name of the branch deployed.
func (s *Source) Branch() plumbing.ReferenceName { return s.branch }

// Init creates the repository, and its parent directories, if it does
// not exist; it is safe to call more than once.
func (s *Source) Init() error {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.cfg.Dir), 0o700); err != nil {
		return fmt.Errorf("hosted: %w", err)
	}
	return gitserver.Init(s.cfg.Dir, s.cfg.Branch)
}

// Revision is the Snapshot.Revision of commit on the deployed branch:
// "main@sha1:<commit>", as a git source names it.
func (s *Source) Revision(commit plumbing.Hash) string {
	return s.cfg.Branch + "@sha1:" + commit.String()
}

// Snapshot reads commit from st as the snapshot a deploy of it applies.
// Errors are as a git source's: a *git.FileError names the file.
func (s *Source) Snapshot(st *filesystem.Storage, commit plumbing.Hash) (*sources.Snapshot, error) {
	return git.SnapshotCommit(st, s.cfg.Name, s.Revision(commit), s.cfg.Subpath, commit)
}

// SnapshotAt implements sources.Revisions: the snapshot of a revision
// Run sent ("main@sha1:<commit>"), read from the repository, which keeps
// every commit pushed to the branch.
func (s *Source) SnapshotAt(revision string) (*sources.Snapshot, error) {
	hash, ok := strings.CutPrefix(revision, s.cfg.Branch+"@sha1:")
	if !ok || !plumbing.IsHash(hash) {
		return nil, fmt.Errorf("hosted: %q is not a revision of branch %s", revision, s.cfg.Branch)
	}
	st := gitserver.Open(s.cfg.Dir)
	defer st.Close()
	snap, err := s.Snapshot(st, plumbing.NewHash(hash))
	if err != nil {
		return nil, fmt.Errorf("hosted: snapshot %s: %w", revision, err)
	}
	return snap, nil
}

// Run creates the repository if needed, then sends a snapshot of the
// deployed branch at once (unless the branch does not exist yet: an
// empty repository has nothing to apply) and again after every Trigger
// that finds the branch moved. A branch whose tree breaks a rule is sent
// once as an error. Run blocks until ctx is done and returns nil then; it
// returns an error only if the repository cannot be created, or
// ErrRunning if called twice.
func (s *Source) Run(ctx context.Context, out chan<- sources.Result) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	if err := s.Init(); err != nil {
		return err
	}
	s.log.Info("starting hosted source", logKeyDir, s.cfg.Dir)
	// last is the revision of the last Result sent: a snapshot, or the
	// error of a tree that breaks a rule, which is not sent again until
	// the branch moves. A failure to read the branch is sent every time.
	var last string
	for {
		if res, rev := s.read(last); res != nil {
			select {
			case out <- *res:
				last = rev
			case <-ctx.Done():
				return nil
			}
		}
		select {
		case <-ctx.Done():
			s.log.Info("stopping hosted source")
			return nil
		case <-s.trigger:
		}
	}
}

// read returns the Result for the branch's current commit and its
// revision, or nil when the branch does not exist or is still at last.
// A failure to read the branch has revision "".
func (s *Source) read(last string) (*sources.Result, string) {
	st := gitserver.Open(s.cfg.Dir)
	defer st.Close()
	ref, err := st.Reference(s.branch)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil, ""
	}
	if err != nil {
		return &sources.Result{Err: fmt.Errorf("hosted: read %s: %w", s.branch.Short(), err)}, ""
	}
	rev := s.Revision(ref.Hash())
	if rev == last {
		return nil, ""
	}
	snap, err := s.Snapshot(st, ref.Hash())
	if err != nil {
		return &sources.Result{Err: fmt.Errorf("snapshot %s: %w", rev, err)}, rev
	}
	snap.FetchedAt = time.Now()
	s.log.Debug("new snapshot", logKeyRevision, rev)
	return &sources.Result{Snapshot: snap}, rev
}

// Trigger asks Run to read the branch now. It never blocks; triggers
// that arrive before Run reads coalesce into one read.
func (s *Source) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}
