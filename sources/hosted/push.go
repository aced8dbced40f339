package hosted

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"kiln.dev/kiln/sources"
	"kiln.dev/kiln/sources/hosted/gitserver"
)

// DefaultPushWait is how long a push waits for the rollout of what it
// deployed when HandlerConfig.PushWait is zero (--push-wait).
const DefaultPushWait = 60 * time.Second

// DefaultSyncWait is how long a push holds the repository's push lock
// waiting for the reconciler to record the sync of its commit.
const DefaultSyncWait = 30 * time.Second

// maxWaitOption bounds -o kiln.wait=DURATION.
const maxWaitOption = 30 * time.Minute

// Push options kiln understands.
const (
	OptionDryRun = "kiln.dry-run"
	OptionNoWait = "kiln.no-wait"
	// OptionWait is "kiln.wait=DURATION".
	OptionWait = "kiln.wait"
)

// Deployer is what a push to a deployed branch asks of the reconciler;
// *reconcile.Reconciler implements it (reconcile/push.go). Every method
// writes what it finds through out, one line per call, for the pusher's
// "remote:" lines.
type Deployer interface {
	// CheckPush renders snap as the named source would sync it and
	// dry-runs every object server-side, writing nothing; out gets what a
	// sync would create, change and prune. A non-nil error refuses the
	// push: its text (one problem per line) names the file and the reason.
	CheckPush(ctx context.Context, source string, snap *sources.Snapshot, out func(string)) error
	// WaitSynced blocks until the source's sync of revision, started at
	// or after since, is recorded, and reports what it applied. It fails
	// with the sync's error, or when ctx ends first.
	WaitSynced(ctx context.Context, source, revision string, since time.Time, out func(string)) error
	// WaitHealthy blocks until everything the sync of revision created or
	// changed is healthy, reporting progress, and fails when something
	// fails or ctx ends first (the push wait). An error with a method
	// RolledBackTo() string says the source re-applied that revision.
	WaitHealthy(ctx context.Context, source, revision string, since time.Time, out func(string)) error
}

// HandlerConfig configures the git server of the hosted sources.
type HandlerConfig struct {
	// Sources are served as /git/<name>.git. Required.
	Sources []*Source
	// Deployer checks and follows pushes to the deployed branches; nil
	// stores pushes without deploying them (sync disabled).
	Deployer Deployer
	// Authorize decides whether a request may read or (write) push a
	// source's repository, as gitserver.Config.Authorize; TokenAuthorizer
	// is kiln's. Required.
	Authorize func(r *http.Request, source string, write bool) (user string, err error)
	// PushWait bounds a push's wait for the rollout; zero means
	// DefaultPushWait.
	PushWait time.Duration
	// MaxPushBytes bounds one push; zero means gitserver's default.
	MaxPushBytes int64
	// Logger receives the git server's lines; nil means slog.Default().
	Logger *slog.Logger
	// Shared, when set, is the record of the repositories that all of a
	// cluster's servers share: any of them takes a push, and the
	// Handler's Replicate keeps each one's copy in step.
	Shared gitserver.Shared
}

// Handler serves the hosted sources' repositories (an http.Handler to
// mount at gitserver.PathPrefix) and follows their shared record.
type Handler struct {
	*gitserver.Server
	srcs map[string]*Source
}

// Replicate keeps every repository in step with HandlerConfig.Shared
// until ctx is done, and triggers a source whose branch another server
// moved. Without Shared it returns at once.
func (h *Handler) Replicate(ctx context.Context) {
	h.Server.Replicate(ctx, func(repo string, ref plumbing.ReferenceName) {
		if src := h.srcs[repo]; src != nil && ref == src.branch {
			src.Trigger()
		}
	})
}

// NewHandler creates every source's repository if it does not exist, and
// returns the git server of the sources, to mount at gitserver.PathPrefix
// (/git/).
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if len(cfg.Sources) == 0 {
		return nil, errors.New("hosted: no sources")
	}
	if cfg.PushWait == 0 {
		cfg.PushWait = DefaultPushWait
	}
	if cfg.PushWait < 0 {
		return nil, errors.New("hosted: pushWait must not be negative")
	}
	repos := map[string]gitserver.Repository{}
	srcs := map[string]*Source{}
	for _, s := range cfg.Sources {
		if err := s.Init(); err != nil {
			return nil, err
		}
		repos[s.cfg.Name] = gitserver.Repository{Dir: s.cfg.Dir, Hooks: &pushHooks{src: s, cfg: &cfg}, Shared: cfg.Shared}
		srcs[s.cfg.Name] = s
	}
	srv, err := gitserver.New(gitserver.Config{
		Repositories: repos,
		Authorize:    cfg.Authorize,
		MaxPushBytes: cfg.MaxPushBytes,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &Handler{Server: srv, srcs: srcs}, nil
}

// pushHooks are one source's gitserver.Hooks: a push to its branch is a
// deploy.
type pushHooks struct {
	src *Source
	cfg *HandlerConfig
}

var _ gitserver.Hooks = (*pushHooks)(nil)

// say writes one "kiln: " line to the pusher.
func say(p *gitserver.Push, format string, args ...any) {
	p.Progress.Line("kiln: " + fmt.Sprintf(format, args...))
}

// out is a Deployer's out for p.
func out(p *gitserver.Push) func(string) {
	return func(s string) { p.Progress.Line("kiln: " + s) }
}

// Check refuses a commit of the deployed branch that would fail to sync.
func (h *pushHooks) Check(ctx context.Context, p *gitserver.Push, u gitserver.Update) error {
	if u.Name != h.src.branch {
		say(p, "%s stored; source %s deploys %s", u.Name.Short(), h.src.cfg.Name, h.src.branch.Short())
		return nil
	}
	if u.IsDelete() {
		say(p, "%s is deployed by source %s and cannot be deleted", u.Name.Short(), h.src.cfg.Name)
		return ErrDeleteBranch
	}
	if _, err := pushWait(p, h.cfg.PushWait); err != nil {
		say(p, "error: %v; kiln knows -o %s, -o %s and -o %s=DURATION", err, OptionDryRun, OptionNoWait, OptionWait)
		return ErrPushOption
	}
	rev := h.src.Revision(u.New)
	snap, err := h.src.Snapshot(p.Storage, u.New)
	if err != nil {
		say(p, "error: %v", err)
		say(p, "%s did not move: fix the commit and push again", u.Name.Short())
		return ErrRefused
	}
	say(p, "checking %s (%d files)", short(rev), len(snap.Files))
	if h.cfg.Deployer == nil {
		say(p, "sync is disabled: the commit is stored, not deployed")
		return nil
	}
	dry := p.Option(OptionDryRun)
	if dry {
		say(p, "dry run: a sync of %s would:", short(rev))
	}
	if err := h.cfg.Deployer.CheckPush(ctx, h.src.cfg.Name, snap, out(p)); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			say(p, "error: %s", line)
		}
		say(p, "%s did not move and nothing was applied: fix the commit and push again", u.Name.Short())
		return ErrRefused
	}
	if dry {
		say(p, "dry run: the commit is valid; %s did not move and nothing was applied", u.Name.Short())
		return gitserver.ErrKeep
	}
	return nil
}

// Apply triggers the source and waits, holding the push lock, until the
// reconciler has recorded the sync of the new commit.
func (h *pushHooks) Apply(ctx context.Context, p *gitserver.Push, u gitserver.Update) error {
	if u.Name != h.src.branch {
		return nil
	}
	h.src.Trigger()
	if h.cfg.Deployer == nil {
		return nil
	}
	rev := h.src.Revision(u.New)
	wctx, cancel := context.WithTimeout(ctx, DefaultSyncWait)
	defer cancel()
	if err := h.cfg.Deployer.WaitSynced(wctx, h.src.cfg.Name, rev, p.Start, out(p)); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			say(p, "error: %s", line)
		}
		say(p, "%s moved to %s, but the sync failed after %s; the last good revision stays applied", u.Name.Short(), short(rev), since(p.Start))
		return ErrNotApplied
	}
	return nil
}

// Follow waits for the rollout and ends the output with the summary line.
func (h *pushHooks) Follow(ctx context.Context, p *gitserver.Push, u gitserver.Update) error {
	if u.Name != h.src.branch || h.cfg.Deployer == nil {
		return nil
	}
	rev := h.src.Revision(u.New)
	if p.Option(OptionNoWait) {
		say(p, "applied %s in %s; not waiting for the rollout (%s)", short(rev), since(p.Start), OptionNoWait)
		return nil
	}
	wait, _ := pushWait(p, h.cfg.PushWait)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	err := h.cfg.Deployer.WaitHealthy(wctx, h.src.cfg.Name, rev, p.Start, out(p))
	var rb interface{ RolledBackTo() string }
	switch {
	case err == nil:
		say(p, "deployed %s in %s: healthy", short(rev), since(p.Start))
		return nil
	case errors.As(err, &rb):
		say(p, "deploy of %s failed after %s: %v", short(rev), since(p.Start), err)
		return fmt.Errorf("deploy failed; rolled back to %s", short(rb.RolledBackTo()))
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		say(p, "deploy of %s not healthy within %s: %v", short(rev), wait, err)
	default:
		say(p, "deploy of %s failed after %s: %v", short(rev), since(p.Start), err)
	}
	return ErrNotHealthy
}

// pushWait is the rollout wait p asks for with -o kiln.wait=DURATION, or
// def. An unknown kiln.* option is an error.
func pushWait(p *gitserver.Push, def time.Duration) (time.Duration, error) {
	wait := def
	for _, o := range p.Options {
		name, value, hasValue := strings.Cut(o, "=")
		switch {
		case !strings.HasPrefix(name, "kiln."):
		case (name == OptionDryRun || name == OptionNoWait) && !hasValue:
		case name == OptionWait && hasValue:
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 || d > maxWaitOption {
				return 0, fmt.Errorf("%s=%q: want a duration up to %s", OptionWait, value, maxWaitOption)
			}
			wait = d
		default:
			return 0, fmt.Errorf("unknown push option %q", o)
		}
	}
	return wait, nil
}

// short abbreviates a revision for the pusher: main@1a2b3c4.
func short(rev string) string {
	branch, hash, ok := strings.Cut(rev, "@sha1:")
	if !ok || len(hash) < 7 {
		return rev
	}
	return branch + "@" + hash[:7]
}

func since(t time.Time) string {
	d := time.Since(t)
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
