package gitserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// PathPrefix is where the server is mounted: repository NAME is served
// under /git/NAME.git/.
const PathPrefix = "/git/"

// DefaultMaxPushBytes bounds the body of one push (commands and pack)
// when Config.MaxPushBytes is zero. A repository of manifests is a few
// MB; the bound keeps a runaway push from filling the disk.
const DefaultMaxPushBytes = 256 << 20

// Config configures a Server.
type Config struct {
	// Repositories are the repositories served, by name; the name is the
	// path element between PathPrefix and ".git". Each Dir must hold a
	// repository (Init creates one).
	Repositories map[string]Repository
	// Authorize decides whether r may read (clone, fetch) repo or, with
	// write, push to it, and names the user for the log. An error that
	// wraps ErrUnauthenticated answers 401, ErrForbidden 403, anything
	// else 503; its text is not sent. Required.
	Authorize func(r *http.Request, repo string, write bool) (user string, err error)
	// MaxPushBytes bounds one push's request body; zero means
	// DefaultMaxPushBytes.
	MaxPushBytes int64
	// Logger receives one line per push and per failed request; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Repository is one bare repository the server serves.
type Repository struct {
	// Dir is the repository's directory.
	Dir string
	// Hooks decide about and follow pushes; nil accepts every push, as a
	// plain git remote does.
	Hooks Hooks
	// Shared, when set, is the record every server shares: pushes are
	// recorded there before their refs move, and Replicate keeps Dir in
	// step with it.
	Shared Shared
}

// Hooks is what a push asks of the repository's owner. Every method gets
// the request's context, which ends when the client goes away.
type Hooks interface {
	// Check is called for each update of a push, with the repository's
	// push lock held, after the pushed objects are stored and before the
	// ref moves. An error refuses the update: the ref stays, and the
	// report says "ng REF <error>" (keep it short; explain on Progress).
	// ErrKeep reports "ok" without moving the ref.
	Check(ctx context.Context, p *Push, u Update) error
	// Apply is called for each update that moved, still holding the lock,
	// so that the next push is checked only after it returns. An error
	// marks the update "ng" although the ref moved.
	Apply(ctx context.Context, p *Push, u Update) error
	// Follow is called for each update that moved and applied, after the
	// lock is released: it may wait long (the client waits with it). An
	// error marks the update "ng" although the ref moved.
	Follow(ctx context.Context, p *Push, u Update) error
}

// Push is one receive-pack request.
type Push struct {
	// Repo is the repository's name.
	Repo string
	// User is who Authorize said pushes.
	User string
	// Options are the push options (`git push -o X`), in order.
	Options []string
	// Storage reads the repository, the pushed objects included. It is
	// opened for this push and must not be used after the hook returns.
	Storage *filesystem.Storage
	// Progress writes lines the client shows as "remote: ...".
	Progress *Progress
	// Start is when the request arrived.
	Start time.Time
}

// Option reports whether push option name was given.
func (p *Push) Option(name string) bool {
	for _, o := range p.Options {
		if o == name {
			return true
		}
	}
	return false
}

// Update is one ref update of a push.
type Update struct {
	// Name is the full ref name, refs/heads/X or refs/tags/X.
	Name plumbing.ReferenceName
	// Old is the value the client saw, zero for a create.
	Old plumbing.Hash
	// New is the value to set, zero for a delete.
	New plumbing.Hash
}

// IsDelete reports whether u deletes its ref.
func (u Update) IsDelete() bool { return u.New.IsZero() }

// Progress writes the lines a client shows as "remote: ..." (git's
// sideband channel 2). It is safe for concurrent use. A client that did
// not ask for a sideband sees none of them; nor does one that went away.
type Progress struct {
	mu    sync.Mutex
	write func(band byte, p []byte) error // nil without a sideband
	err   error
}

// Line writes one line; a trailing newline is added, and newlines and
// carriage returns inside s become spaces, so one call is one line.
func (p *Progress) Line(s string) {
	if p == nil {
		return
	}
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.write == nil || p.err != nil {
		return
	}
	p.err = p.write(bandProgress, []byte(s+"\n"))
}

// Printf writes one formatted line, as Line.
func (p *Progress) Printf(format string, args ...any) {
	p.Line(fmt.Sprintf(format, args...))
}

func (c *Config) validate() error {
	if c.Authorize == nil {
		return errors.New("gitserver: authorize is required")
	}
	if c.MaxPushBytes < 0 {
		return errors.New("gitserver: maxPushBytes must not be negative")
	}
	for name, r := range c.Repositories {
		if !validRepoName(name) {
			return fmt.Errorf("gitserver: repository name %q: want letters, digits, '-', '_' and '.'", name)
		}
		if r.Dir == "" {
			return fmt.Errorf("gitserver: repository %s: dir is required", name)
		}
	}
	return nil
}

// validRepoName accepts names that are one safe path element.
func validRepoName(name string) bool {
	if name == "" || name == "." || name == ".." || strings.HasSuffix(name, ".git") || len(name) > 128 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return false
		}
	}
	return true
}
