package store

import (
	"errors"
	"log/slog"
	"time"
)

// Defaults for Config's zero values.
const (
	// DefaultCompactInterval is how often the compactor looks at the
	// revision history.
	DefaultCompactInterval = time.Minute
	// DefaultCompactMinAge keeps every revision younger than this, so
	// watchers that fall a little behind resume instead of relisting.
	DefaultCompactMinAge = 5 * time.Minute
	// DefaultCompactRetention bounds history by count: when more than this
	// many revisions are younger than DefaultCompactMinAge, the oldest
	// beyond it are compacted anyway so a write burst cannot grow the
	// database without bound.
	DefaultCompactRetention = 10000
	// DefaultMaxRequestBytes is etcd's request limit; larger objects are
	// refused with ErrTooLarge.
	DefaultMaxRequestBytes = 3*1024*1024 + 512*1024
)

// Config says where the data lives. The zero value of every field but
// DataDir (or Endpoints) is a default.
type Config struct {
	// DataDir is the embedded member's data directory (DATA_DIR/etcd).
	// Ignored when Endpoints is set.
	DataDir string
	// Endpoints are client URLs of an external etcd cluster. Empty means
	// embedded.
	Endpoints []string
	// CAFile, CertFile and KeyFile are the TLS files for Endpoints.
	CAFile, CertFile, KeyFile string
	// ClientURL is where the embedded member listens for clients; empty
	// picks a free loopback port.
	ClientURL string
	// CompactInterval, CompactMinAge and CompactRetention steer periodic
	// compaction; a negative CompactInterval disables it.
	CompactInterval  time.Duration
	CompactMinAge    time.Duration
	CompactRetention int64
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.CompactInterval == 0 {
		c.CompactInterval = DefaultCompactInterval
	}
	if c.CompactMinAge == 0 {
		c.CompactMinAge = DefaultCompactMinAge
	}
	if c.CompactRetention == 0 {
		c.CompactRetention = DefaultCompactRetention
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if len(c.Endpoints) == 0 && c.DataDir == "" {
		return errors.New("store: dataDir is required for the embedded etcd")
	}
	if c.CompactRetention < 0 {
		return errors.New("store: compactRetention must not be negative")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("store: datastore certFile and keyFile must be given together")
	}
	return nil
}
