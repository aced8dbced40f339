package controllers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// Defaults of Config.
const (
	DefaultLeaseName      = "kiln-controller-manager"
	DefaultLeaseNamespace = "kube-system"
	DefaultLeaseDuration  = 15 * time.Second
	DefaultRenewDeadline  = 10 * time.Second
	DefaultRetryPeriod    = 2 * time.Second
	DefaultResync         = 10 * time.Minute
)

// Runnable is one controller: Run blocks until ctx is done.
type Runnable interface {
	Run(ctx context.Context) error
}

// Shared is what the manager hands every Builder: one client, one
// informer factory and one event broadcaster for all the controllers, so
// that ten controllers open one watch per resource and one Event writer,
// not ten.
type Shared struct {
	// Client is the manager's client.
	Client kubernetes.Interface
	// Informers is started by the manager once every controller is built.
	Informers informers.SharedInformerFactory
	// Events writes the Events of every controller through one correlator
	// (repeats become counts, floods are dropped); each controller makes
	// its recorder with its own component name, as kube's do:
	// Events.NewRecorder(scheme.Scheme, corev1.EventSource{Component:
	// "replicaset-controller"}).
	Events record.EventBroadcaster
	// Logger is the manager's logger with the controller's name.
	Logger *slog.Logger
}

// Builder makes a controller on what the manager shares.
type Builder func(s Shared) (Runnable, error)

// Config configures the manager.
type Config struct {
	Client kubernetes.Interface
	// Controllers are built when this server becomes leader.
	Controllers map[string]Builder
	// Identity names this server in the Lease; default hostname + pid.
	Identity string
	// LeaseName and LeaseNamespace locate the Lease.
	LeaseName, LeaseNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// Logger receives lifecycle messages; nil means slog.Default().
	Logger *slog.Logger
}

// Manager runs the controllers while it holds the Lease.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	started bool
	leading chan struct{}
}

// New validates cfg and applies defaults; it starts nothing.
func New(cfg Config) (*Manager, error) {
	if cfg.Client == nil {
		return nil, errors.New("controllers: client is required")
	}
	if cfg.LeaseName == "" {
		cfg.LeaseName = DefaultLeaseName
	}
	if cfg.LeaseNamespace == "" {
		cfg.LeaseNamespace = DefaultLeaseNamespace
	}
	if cfg.LeaseDuration == 0 {
		cfg.LeaseDuration = DefaultLeaseDuration
	}
	if cfg.RenewDeadline == 0 {
		cfg.RenewDeadline = DefaultRenewDeadline
	}
	if cfg.RetryPeriod == 0 {
		cfg.RetryPeriod = DefaultRetryPeriod
	}
	if cfg.Identity == "" {
		host, _ := os.Hostname()
		cfg.Identity = fmt.Sprintf("%s_%d", host, os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger.With("component", "controllers"), leading: make(chan struct{})}, nil
}

// Leading is closed once this manager holds the Lease.
func (m *Manager) Leading() <-chan struct{} { return m.leading }

// Run campaigns for the Lease and, while leading, runs every controller.
// Losing the Lease stops them and returns an error (the process restarts
// rather than risk two leaders); ctx done returns nil. The Lease is
// released only after every controller has returned, so a successor never
// runs beside writes of this one still in flight (a scheduler's binds).
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.started {
		m.mu.Unlock()
		return errors.New("controllers: Run called twice")
	}
	m.started = true
	m.mu.Unlock()

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: m.cfg.LeaseName, Namespace: m.cfg.LeaseNamespace},
		Client:     m.cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: m.cfg.Identity},
	}
	// The elector runs on its own context: cancelling it releases the
	// Lease (ReleaseOnCancel), which must wait for the controllers.
	leCtx, stopLE := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLE()
	// client-go starts OnStartedLeading in a goroutine it does not wait
	// for; the callback only hands the leading context over, and the
	// controllers run here.
	leadCh := make(chan context.Context, 1)
	lost := false
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   m.cfg.LeaseDuration,
		RenewDeadline:   m.cfg.RenewDeadline,
		RetryPeriod:     m.cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            m.cfg.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) { leadCh <- lctx },
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost = true
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("controllers: leader election: %w", err)
	}
	leDone := make(chan struct{})
	go func() {
		defer close(leDone)
		le.Run(leCtx)
	}()
	var runErr error
	select {
	case lctx := <-leadCh:
		close(m.leading)
		m.log.Info("leading", "identity", m.cfg.Identity)
		// The controllers stop when ctx is done or the Lease is lost
		// (lctx); only then is the Lease released.
		cctx, cancel := context.WithCancel(lctx)
		stop := context.AfterFunc(ctx, cancel)
		runErr = m.runControllers(cctx)
		stop()
		cancel()
	case <-ctx.Done():
	case <-leDone:
	}
	stopLE()
	<-leDone
	if runErr != nil {
		return runErr
	}
	if lost {
		return errors.New("controllers: lost the leader lease")
	}
	return nil
}

// runControllers builds every controller on one informer factory and one
// event broadcaster and runs them until ctx is done; the first error stops
// the rest.
func (m *Manager) runControllers(ctx context.Context) error {
	f := informers.NewSharedInformerFactory(m.cfg.Client, DefaultResync)
	// The broadcaster outlives the controllers (Shutdown after Wait), so
	// that the Events of their last syncs are still written.
	events := record.NewBroadcaster()
	events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: m.cfg.Client.CoreV1().Events("")})
	defer events.Shutdown()
	// Every controller is built before any runs: a Builder that fails
	// then leaves nothing running behind the returned error.
	built := make(map[string]Runnable, len(m.cfg.Controllers))
	for name, build := range m.cfg.Controllers {
		c, err := build(Shared{Client: m.cfg.Client, Informers: f, Events: events, Logger: m.cfg.Logger.With("controller", name)})
		if err != nil {
			return fmt.Errorf("controllers: %s: %w", name, err)
		}
		built[name] = c
	}
	g, gctx := errgroup.WithContext(ctx)
	for name, c := range built {
		g.Go(func() error {
			if err := c.Run(gctx); err != nil {
				return fmt.Errorf("controllers: %s: %w", name, err)
			}
			return nil
		})
	}
	f.Start(gctx.Done())
	err := g.Wait()
	f.Shutdown()
	return err
}
