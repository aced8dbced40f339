package dir

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// Defaults for Config's zero values.
const (
	// DefaultDebounce is how long the tree must be quiet after a change
	// before it is read, so that an editor saving many files yields one
	// snapshot. Editors write a file, or a temporary file and a rename,
	// within a few milliseconds, and `git checkout` writes file after file
	// without pausing; 30 ms covers both with room for a busy machine,
	// and is most of issue 3's latency budget that is not the API's
	// (it was 50 ms).
	DefaultDebounce = 30 * time.Millisecond
	// DefaultPollInterval is how often the tree is re-read when fsnotify is
	// unavailable (no inotify, or its watch limit reached) and while the
	// root directory is missing.
	DefaultPollInterval = 2 * time.Second
)

// Config says which directory to watch. The zero value of every field but
// Name and Path is a default.
type Config struct {
	// Name is the source's name; it is copied into every Snapshot.
	Name string
	// Path is the directory to watch. It must exist and be a directory
	// when New is called; it may disappear and come back later.
	Path string
	// Debounce is the quiet time after the last change before the tree
	// is read. A tree that never goes quiet is still read at least every
	// 10×Debounce.
	Debounce time.Duration
	// PollInterval is the re-read period when fsnotify cannot be used and
	// while Path is missing. fsnotify is preferred: polling re-reads the
	// whole tree every interval.
	PollInterval time.Duration
	// Logger receives lifecycle and degraded-mode messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// validate checks cfg and makes Path absolute, so that the watched path
// does not depend on the working directory of later calls.
func (c *Config) validate() error {
	if c.Name == "" {
		return errors.New("dir: name is required")
	}
	if c.Path == "" {
		return errors.New("dir: path is required")
	}
	if c.Debounce < 0 {
		return errors.New("dir: debounce must not be negative")
	}
	if c.PollInterval < 0 {
		return errors.New("dir: pollInterval must not be negative")
	}
	abs, err := filepath.Abs(c.Path)
	if err != nil {
		return fmt.Errorf("dir: path: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("dir: path: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("dir: path %s is not a directory", abs)
	}
	c.Path = abs
	return nil
}
