package dir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"kiln.dev/kiln/sources"
)

const (
	// maxDebounceFactor bounds how long a stream of changes can hold off
	// a read: at most maxDebounceFactor×Debounce after its first change.
	maxDebounceFactor = 10
	// maxVanishedRetries is how many reads in a row may lose a race with
	// the tree changing (or find directories not yet watched) before the
	// result is sent as it is.
	maxVanishedRetries = 3
)

// Source watches one local directory and emits a snapshot of it whenever
// its content changes.
type Source struct {
	cfg     Config
	log     *slog.Logger
	trigger chan struct{} // capacity 1: pending Triggers coalesce
	running atomic.Bool

	// Test seams, set in New.
	newWatcher func() (*fsnotify.Watcher, error)
	limits     limits
	// onRead, if set, is called on Run's goroutine after every read with
	// its result and whether it was sent (false when unchanged or retried).
	onRead func(res sources.Result, sent bool)
}

var _ sources.Source = (*Source)(nil)

// New validates cfg and returns a Source. It starts nothing.
func New(cfg Config) (*Source, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Source{
		cfg:        cfg,
		log:        cfg.Logger.With(logKeyComponent, "source", logKeySource, cfg.Name),
		trigger:    make(chan struct{}, 1),
		newWatcher: fsnotify.NewWatcher,
		limits:     defaultLimits(),
	}, nil
}

// Trigger asks for an immediate read of the tree, skipping the debounce.
// It never blocks; triggers that arrive while one is pending coalesce. A
// read that finds the content unchanged sends nothing.
func (s *Source) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Run reads the tree at once, then watches it with fsnotify (or polls
// every PollInterval when fsnotify fails) and sends a Result whenever the
// content's revision or the read error changes. Sends block: a slow
// consumer slows the source. Run blocks until ctx is done and returns nil
// then; every goroutine it started, the watcher's included, has exited by
// the time it returns. It can be called once.
func (s *Source) Run(ctx context.Context, out chan<- sources.Result) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("dir: Run called twice")
	}
	l := &loop{s: s, out: out, watched: map[string]struct{}{}}
	if w, err := s.newWatcher(); err != nil {
		s.log.Warn("fsnotify unavailable, polling", logKeyError, err, logKeyInterval, s.cfg.PollInterval)
	} else {
		l.w = w
	}
	// The watcher's goroutine ends in Close, so it is gone once Run
	// returns.
	defer l.closeWatcher()
	s.log.Info("watching directory", logKeyPath, s.cfg.Path)

	// The ticker runs throughout, but its ticks only cause a read while
	// there is no watcher or the root is missing (nothing to watch).
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	var pendingSince time.Time // first change not yet read; zero if none

	schedule := func() {
		now := time.Now()
		if pendingSince.IsZero() {
			pendingSince = now
		}
		wait := min(s.cfg.Debounce, pendingSince.Add(maxDebounceFactor*s.cfg.Debounce).Sub(now))
		debounce.Reset(max(wait, 0))
	}

	readNow := true
	for {
		if readNow {
			readNow = false
			pendingSince = time.Time{}
			debounce.Stop()
			if l.sync(ctx) != nil {
				return nil // ctx is done
			}
			if l.retry {
				schedule()
			}
		}

		var (
			events <-chan fsnotify.Event
			errs   <-chan error
		)
		if l.w != nil {
			events, errs = l.w.Events, l.w.Errors
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				l.fallback(errors.New("event channel closed"))
				readNow = true
				continue
			}
			if l.handle(ev) {
				schedule()
			}
		case err, ok := <-errs:
			if !ok {
				l.fallback(errors.New("error channel closed"))
				readNow = true
				continue
			}
			// Usually a queue overflow: events were lost, so watches may
			// be stale too. Start over from a full read.
			s.log.Warn("fsnotify error, re-reading the tree", logKeyError, err)
			l.unwatch("")
			l.cache = nil
			readNow = true
		case <-debounce.C:
			readNow = true
			// select picks at random among ready cases: an event queued
			// beside the timer means the tree is not quiet yet. Take it
			// and wait on, unless the max wait is over.
			if l.w != nil && time.Since(pendingSince) < maxDebounceFactor*s.cfg.Debounce {
				select {
				case ev, ok := <-l.w.Events:
					if ok && l.handle(ev) {
						schedule()
						readNow = false
					}
				default:
				}
			}
		case <-s.trigger:
			readNow = true
		case <-poll.C:
			readNow = l.w == nil || l.rootLost
		}
	}
}

// loop is the state of one Run. It is used only by Run's goroutine.
type loop struct {
	s   *Source
	out chan<- sources.Result

	// w is nil when polling.
	w *fsnotify.Watcher
	// watched holds the absolute paths of the directories w watches;
	// seen, those the current read has walked.
	watched, seen map[string]struct{}
	rootLost      bool
	// added counts the watches the current read added.
	added int
	// cache is what the last read kept for the next one, with the paths
	// fsnotify named since. It is nil, and the next read a full one, when
	// polling (no events name changed paths), after a failed read, and
	// whenever events may have been lost.
	cache *cache

	lastKey string // of the last Result sent; "" before the first
	// retries counts reads in a row that lost a race with a change or
	// found unwatched directories; retry says the last one did and must
	// be redone.
	retries int
	retry   bool
}

// sync reads the tree and sends the result unless it equals the last one
// sent. It returns an error only when ctx is done.
func (l *loop) sync(ctx context.Context) error {
	res := l.read(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	l.retry = false
	if errors.Is(res.Err, errVanished) && l.retries < maxVanishedRetries {
		// The change that raced this read has queued an event, but the
		// event may already have been consumed: retry regardless.
		l.retries++
		l.retry = true
		l.observe(res, false)
		return nil
	}
	if res.Err == nil && l.added > 0 && l.lastKey != "" && l.retries < maxVanishedRetries {
		// The read found directories nobody watched, so files written
		// into them meanwhile raised no event and the debounce could not
		// wait for them: `git checkout` or `mkdir -p` and a copy may still
		// be filling them. Now they are watched, read again after a
		// quiet Debounce rather than send what may be half a tree.
		l.s.log.Debug("new directories watched, reading again", logKeyFiles, len(res.Snapshot.Files))
		l.retries++
		l.retry = true
		l.observe(res, false)
		return nil
	}
	l.retries = 0

	key := "err:"
	if res.Err != nil {
		key += res.Err.Error()
	} else {
		key = "rev:" + res.Snapshot.Revision
	}
	if key == l.lastKey {
		l.observe(res, false)
		return nil
	}
	select {
	case l.out <- res:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.lastKey = key
	if res.Err != nil {
		l.s.log.Debug("read failed", logKeyError, res.Err)
	} else {
		l.s.log.Debug("snapshot", logKeyRevision, res.Snapshot.Revision, logKeyFiles, len(res.Snapshot.Files))
	}
	l.observe(res, true)
	return nil
}

func (l *loop) observe(res sources.Result, sent bool) {
	if l.s.onRead != nil {
		l.s.onRead(res, sent)
	}
}

// read takes one snapshot of the tree, adding watches on the way.
func (l *loop) read(ctx context.Context) sources.Result {
	now := time.Now()
	root, err := os.OpenRoot(l.s.cfg.Path)
	if err != nil {
		l.loseRoot()
		return sources.Result{Err: fmt.Errorf("%w: %w", ErrRoot, err)}
	}
	defer root.Close()
	l.seen = map[string]struct{}{}
	l.added = 0
	files, next, err := readTreeCached(ctx, root, l.s.limits, l.watchDir, l.cache)
	l.cache = nil
	if err != nil {
		if errors.Is(err, ErrRoot) {
			l.loseRoot()
		}
		return sources.Result{Err: err}
	}
	if l.w != nil { // still watching: the walk may have fallen back
		l.cache = next
	}
	l.rootLost = false
	// Drop watches of directories that are gone. Only after a complete
	// walk: a failed one has not seen every directory.
	for p := range l.watched {
		if _, ok := l.seen[p]; !ok {
			l.unwatch(p)
		}
	}
	return sources.Result{Snapshot: &sources.Snapshot{
		Source:    l.s.cfg.Name,
		Revision:  revision(files),
		Files:     files,
		FetchedAt: now,
	}}
}

// watchDir is the walk's onDir: it adds a watch on a directory before the
// directory is listed, so a change made after the listing raises an
// event. New directories are thus watched by the first read after their
// Create event.
func (l *loop) watchDir(rel string) {
	if l.w == nil {
		return
	}
	p := filepath.Join(l.s.cfg.Path, filepath.FromSlash(rel))
	l.seen[p] = struct{}{}
	if _, ok := l.watched[p]; ok {
		return
	}
	if err := l.w.Add(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return // removed meanwhile; the walk notices too
		}
		// Typically the inotify watch limit (ENOSPC).
		l.fallback(err)
		return
	}
	l.watched[p] = struct{}{}
	l.added++
}

// handle updates the watches for ev and reports whether ev calls for a
// read.
func (l *loop) handle(ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		// inotify has dropped (or fsnotify has removed) the watch of a
		// deleted or moved directory; the watches below a moved one still
		// exist but under stale names. Forget them all: the next read
		// re-adds whatever is still there.
		if _, ok := l.watched[name]; ok {
			l.unwatch(name)
		}
	}
	rel, err := filepath.Rel(l.s.cfg.Path, name)
	if err != nil {
		return true
	}
	// Inside a dot-folder (only possible through a stale watch): ignore.
	// The last element may be a dot-file, which is part of the snapshot.
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for _, p := range parts[:len(parts)-1] {
		if strings.HasPrefix(p, ".") && p != ".." {
			return false
		}
	}
	if l.cache != nil {
		// The root itself is ".", which makes the whole tree dirty.
		l.cache.markDirty(filepath.ToSlash(rel))
	}
	return true
}

// unwatch removes the watch of directory p and of every directory below
// it; "" removes all watches.
func (l *loop) unwatch(p string) {
	for q := range l.watched {
		if p == "" || q == p || strings.HasPrefix(q, p+string(filepath.Separator)) {
			if l.w != nil {
				_ = l.w.Remove(q) // may be gone already; nothing to do then
			}
			delete(l.watched, q)
		}
	}
}

// loseRoot records that the root cannot be read: its watches are dead,
// and the poll ticker takes over until it is back.
func (l *loop) loseRoot() {
	l.unwatch("")
	l.cache = nil
	l.rootLost = true
}

// fallback switches to polling for the rest of Run.
func (l *loop) fallback(err error) {
	l.s.log.Warn("fsnotify failed, polling", logKeyError, err, logKeyInterval, l.s.cfg.PollInterval)
	l.closeWatcher()
	clear(l.watched)
	l.cache = nil
}

func (l *loop) closeWatcher() {
	if l.w != nil {
		_ = l.w.Close() // errors only if already closed
		l.w = nil
	}
}
