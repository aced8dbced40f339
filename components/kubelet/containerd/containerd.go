package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ctrd "github.com/containerd/containerd"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cniversion "github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sync/errgroup"

	"kiln.dev/kiln/components/kubelet/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Runtime is the containerd implementation of runtime.Runtime. Create it
// with New, run it with Run; its methods fail with ErrNotReady until
// Ready is closed.
type Runtime struct {
	cfg    Config
	p      paths
	log    *slog.Logger
	daemon *daemon // nil with Config.Endpoint
	ready  chan struct{}
	ran    atomic.Bool

	// relayWG tracks the log relay goroutines; they end when their
	// container's output ends or when Run's context is done.
	relayWG sync.WaitGroup
	// bg tracks exit handling started from the event loop.
	bg sync.WaitGroup

	mu sync.Mutex
	// client is set once containerd answers and stays for the life of Run
	// (gRPC reconnects on its own after a containerd restart).
	client *ctrd.Client
	// runCtx is Run's context; log relays stop with it.
	runCtx context.Context
	// network is the pod network, nil before a pod CIDR is known.
	network *podNetwork
	// masqCIDR is the CIDR the masquerade chain was written for by this
	// process.
	masqCIDR string
	// relays are the log relays of started containers, by container ID.
	relays map[string]*logRelay
	// oom records containers whose cgroup reported an OOM kill
	// (/tasks/oom events), until their exit is recorded.
	oom map[string]bool
	// imported remembers archives already imported, by path (saved in
	// stampsFile).
	imported map[string]archiveStamp

	// locks serializes the lifecycle steps of one container (start, exit
	// recording, removal, adoption).
	locks keyedMutex

	// cni runs the plugins; set in New.
	cni *libcni.CNIConfig
}

// New applies defaults and validates cfg. It starts nothing.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := cfg.paths()
	log := cfg.Logger.With(logKeyComponent, "containerd")
	r := &Runtime{
		cfg:      cfg,
		p:        p,
		log:      log,
		ready:    make(chan struct{}),
		relays:   map[string]*logRelay{},
		oom:      map[string]bool{},
		imported: map[string]archiveStamp{},
		// An explicit exec: given none, libcni makes one at first use,
		// unguarded, which concurrent first sandboxes race on.
		cni: libcni.NewCNIConfigWithCacheDir([]string{cfg.CNIBinDir}, p.cniCache, &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: cniversion.PluginDecoder{},
		}),
	}
	if cfg.Endpoint == "" {
		r.daemon = &daemon{bin: cfg.ContainerdBinary, p: p, log: log, startTimeout: cfg.StartTimeout}
	}
	return r, nil
}

// Ready is closed once containerd serves, the archives in ImagesDir are
// imported and the containers left by an earlier run are adopted.
func (r *Runtime) Ready() <-chan struct{} { return r.ready }

// Address is containerd's socket, e.g. for ctr -a.
func (r *Runtime) Address() string { return r.p.address }

// Namespace is the containerd namespace of this runtime's containers.
func (r *Runtime) Namespace() string { return r.cfg.Namespace }

// Run starts (or connects to) containerd and serves until ctx is done,
// then stops its log relays and the containerd it started; containers keep
// running. It returns nil on a clean stop.
func (r *Runtime) Run(ctx context.Context) error {
	if !r.ran.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.daemon != nil {
		// Without the tmpfs (no right to mount), containerd keeps its
		// state on disk, as before: slower, not wrong.
		if err := mountStateFS(r.p.state); err != nil {
			r.log.Warn("containerd state stays on disk", logKeyErr, err)
		}
		defer func() {
			if r.daemon.abrupt.Load() {
				return // as kill -9 would leave it
			}
			if err := unmountStateFS(r.p.state); err != nil {
				r.log.Warn("cannot unmount containerd state", logKeyErr, err)
			}
		}()
	}
	for _, dir := range []string{r.p.dir, r.p.netns, r.p.io, r.p.exec, r.cfg.ImagesDir} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return err
		}
	}
	if err := r.loadNetwork(); err != nil {
		return err
	}
	r.loadStamps()
	r.mu.Lock()
	r.runCtx = ctx
	r.mu.Unlock()

	g, gctx := errgroup.WithContext(ctx)
	if r.daemon != nil {
		g.Go(func() error { return r.daemon.run(gctx) })
	}
	g.Go(func() error {
		client, err := r.connect(gctx)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.client = client
		r.mu.Unlock()

		r.importAll(gctx)
		watcher, err := r.newImageWatcher()
		if err != nil {
			return err
		}
		g.Go(func() error { return r.watchImages(gctx, watcher) })

		adopted := make(chan struct{})
		g.Go(func() error { return r.watchEvents(gctx, adopted) })
		select {
		case <-adopted:
		case <-gctx.Done():
			return nil
		}
		close(r.ready)
		r.log.Info("containerd runtime ready", logKeyAddress, r.p.address)
		return nil
	})
	err := g.Wait()

	// Shutdown: 1. every goroutine above has returned (the daemon has
	// stopped containerd); 2. the relays stop reading (ctx is done, their
	// FIFOs are closed) and exit handlers finish; 3. the client closes.
	cancel()
	// startRelay adds to relayWG under r.mu after checking the context,
	// so once the lock is passed no relay can start any more.
	r.mu.Lock()
	r.mu.Unlock()
	r.relayWG.Wait()
	r.bg.Wait()
	r.mu.Lock()
	client := r.client
	r.client = nil
	r.mu.Unlock()
	if client != nil {
		client.Close()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// connect waits for containerd's socket and returns a client once it
// answers.
func (r *Runtime) connect(ctx context.Context) (*ctrd.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if _, err := os.Stat(r.p.address); err == nil {
			client, err := ctrd.New(r.p.address,
				ctrd.WithDefaultNamespace(r.cfg.Namespace),
				ctrd.WithTimeout(2*time.Second))
			if err == nil {
				if ok, err := client.IsServing(ctx); ok {
					return client, nil
				} else {
					lastErr = err
				}
				client.Close()
			} else {
				lastErr = err
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("containerd at %s did not answer within %s (its log: %s): %w", r.p.address, r.cfg.StartTimeout, r.p.daemonLog, lastErr)
			}
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// getClient returns the client, or ErrNotReady before Run connected.
func (r *Runtime) getClient() (*ctrd.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return nil, ErrNotReady
	}
	return r.client, nil
}

// Version implements runtime.Runtime.
func (r *Runtime) Version(ctx context.Context) (string, string, error) {
	c, err := r.getClient()
	if err != nil {
		return "", "", err
	}
	v, err := c.Version(ctx)
	if err != nil {
		return "", "", fmt.Errorf("containerd version: %w", err)
	}
	return "containerd", v.Version, nil
}

// Status implements runtime.Runtime.
func (r *Runtime) Status(ctx context.Context) (runtime.Status, error) {
	var st runtime.Status
	var reasons []string
	if c, err := r.getClient(); err != nil {
		reasons = append(reasons, err.Error())
	} else {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := c.IsServing(sctx)
		cancel()
		if ok {
			st.RuntimeReady = true
		} else {
			reasons = append(reasons, fmt.Sprintf("containerd is not serving: %v", err))
		}
	}
	if err := r.networkReady(); err != nil {
		reasons = append(reasons, err.Error())
	} else {
		st.NetworkReady = true
	}
	st.Reason = strings.Join(reasons, "; ")
	return st, nil
}

// keyedMutex is a mutex per key; entries are dropped when unused.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
