package dashboard

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Defaults for Config's zero values.
const (
	// DefaultThrottle is the shortest time between two live-update
	// pushes: changes within it are sent as one.
	DefaultThrottle = 250 * time.Millisecond
	// DefaultLogLines is how many last log lines of a crash-looping
	// container are shown.
	DefaultLogLines = 20
	// DefaultMaxRows bounds a table; the page says how many were left out.
	DefaultMaxRows = 500
	// DefaultMaxStreams bounds the live-update streams open at once.
	DefaultMaxStreams = 64
)

// Config configures the dashboard. Client and Dynamic are required.
type Config struct {
	// Client reads the built-in kinds (informers), discovery and pod logs.
	Client kubernetes.Interface
	// Dynamic reads Sources, the other kinds Sources manage, and an
	// object's YAML.
	Dynamic dynamic.Interface
	// Token, when set, must come with every request except the static
	// assets: as "Authorization: Bearer <token>", or once as ?token=<token>,
	// which sets a cookie for the browser. Set it when the dashboard
	// listens beyond loopback.
	Token string
	// Gatherer is read by /metrics besides the dashboard's own metrics,
	// e.g. the registry the API server's request metrics are on. Nil
	// means the dashboard's own metrics only.
	Gatherer prometheus.Gatherer
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for ages on the pages; nil means time.Now.
	Now func() time.Time
	// Throttle is the shortest time between live-update pushes; zero
	// means DefaultThrottle.
	Throttle time.Duration
	// LogLines is how many last log lines of a crash-looping container
	// are shown; zero means DefaultLogLines.
	LogLines int64
	// MaxRows bounds a table; zero means DefaultMaxRows.
	MaxRows int
	// MaxStreams bounds the live-update streams; zero means
	// DefaultMaxStreams.
	MaxStreams int
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Throttle == 0 {
		c.Throttle = DefaultThrottle
	}
	if c.LogLines == 0 {
		c.LogLines = DefaultLogLines
	}
	if c.MaxRows == 0 {
		c.MaxRows = DefaultMaxRows
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultMaxStreams
	}
}

func (c *Config) validate() error {
	switch {
	case c.Client == nil:
		return errors.New("dashboard: client is required")
	case c.Dynamic == nil:
		return errors.New("dashboard: dynamic is required")
	case c.Throttle < 0:
		return errors.New("dashboard: throttle must not be negative")
	case c.LogLines < 0 || c.MaxRows < 0 || c.MaxStreams < 0:
		return errors.New("dashboard: logLines, maxRows and maxStreams must not be negative")
	}
	return nil
}
