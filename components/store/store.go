package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3rpc"
	"go.etcd.io/etcd/server/v3/proxy/grpcproxy/adapter"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Store is kiln's etcd: an embedded member or a client of an external
// cluster.
type Store struct {
	cfg   Config
	ready chan struct{}

	mu      sync.Mutex
	started bool
	client  *clientv3.Client
	// kv serves the key-value calls of kv.go: the embedded member's own
	// KV service, called in process, or the client's.
	kv     clientv3.KV
	etcd   *embed.Etcd
	leases map[time.Duration]leaseState
}

// New validates cfg and returns a Store. It starts nothing.
func New(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, ready: make(chan struct{})}, nil
}

// Ready is closed once the store answers requests.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Client returns the etcd client, which talks gRPC to the member even when
// it is embedded. Valid after Ready.
func (s *Store) Client() *clientv3.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client
}

// kvAPI is the KV the store's reads and writes go through. Valid after
// Ready.
func (s *Store) kvAPI() clientv3.KV {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv
}

// ClientURL returns the URL the embedded member serves clients on, or the
// first external endpoint. Valid after Ready.
func (s *Store) ClientURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.etcd != nil {
		return "http://" + s.etcd.Clients[0].Addr().String()
	}
	return s.cfg.Endpoints[0]
}

// Run starts etcd (or connects to it), runs the compactor and blocks until
// ctx is done; then it closes the client and stops the embedded member.
// It returns nil on a clean stop.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("store: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	endpoints := s.cfg.Endpoints
	var tlsCfg *tls.Config
	if len(endpoints) == 0 {
		e, err := s.startEmbedded(ctx)
		if err != nil {
			return err
		}
		// Shutdown order: 1. the client (below, deferred later so it runs
		// first), 2. the member, which flushes and closes its WAL.
		defer e.Close()
		s.mu.Lock()
		s.etcd = e
		s.mu.Unlock()
		endpoints = []string{"http://" + e.Clients[0].Addr().String()}
	} else {
		c, err := s.cfg.clientTLS()
		if err != nil {
			return err
		}
		tlsCfg = c
	}

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        10 * time.Second,
		TLS:                tlsCfg,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: DefaultMaxRequestBytes + 1024*1024,
		MaxCallRecvMsgSize: 256 * 1024 * 1024,
		Context:            ctx,
	})
	if err != nil {
		return fmt.Errorf("store: connect %v: %w", endpoints, err)
	}
	defer cli.Close()
	// An external cluster must answer before we call ourselves ready.
	if err := s.probe(ctx, cli); err != nil {
		return err
	}
	s.mu.Lock()
	s.client = cli
	s.kv = cli.KV
	if s.etcd != nil {
		// The member runs in this process: its KV service is called
		// directly, as etcd's own v3client does, instead of over gRPC and
		// loopback TCP. A create spent more CPU marshalling, framing and
		// waking gRPC's goroutines at both ends than etcd spent on the
		// write (BenchmarkAPICreate). It is the same service the gRPC
		// endpoint serves, quota included, so requests, limits and errors
		// are the same. Watches, leases and compaction stay on the client
		// (their in-process stream adapters are less proven: etcd#20716).
		s.kv = clientv3.NewKVFromKVClient(adapter.KvServerToKvClient(v3rpc.NewQuotaKVServer(s.etcd.Server)), nil)
	}
	s.mu.Unlock()
	close(s.ready)
	s.cfg.Logger.Info("store ready", "endpoints", endpoints)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-gctx.Done()
		return nil
	})
	if s.cfg.CompactInterval > 0 {
		g.Go(func() error { return s.compactLoop(gctx) })
	}
	if s.etcd != nil {
		g.Go(func() error {
			select {
			case err := <-s.etcd.Err():
				return fmt.Errorf("store: etcd: %w", err)
			case <-gctx.Done():
				return nil
			}
		})
	}
	return g.Wait()
}

// clientTLS is the TLS configuration for an external cluster, nil when
// no TLS file is given (plain http endpoints).
func (c *Config) clientTLS() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" {
		return nil, nil
	}
	info := transport.TLSInfo{TrustedCAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
	tc, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("store: datastore tls: %w", err)
	}
	return tc, nil
}

func (s *Store) probe(ctx context.Context, cli *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/kiln/probe"); err != nil {
		return fmt.Errorf("store: etcd at %v does not answer: %w", cli.Endpoints(), err)
	}
	return nil
}

func (s *Store) startEmbedded(ctx context.Context) (*embed.Etcd, error) {
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	// etcd refuses a data dir readable by others; keep it 0700 even if it
	// existed before.
	if err := os.Chmod(s.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: data dir: %w", err)
	}
	clientURL := s.cfg.ClientURL
	if clientURL == "" {
		clientURL = "http://127.0.0.1:0"
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return nil, fmt.Errorf("store: client url %q: %w", clientURL, err)
	}
	// The peer URL of a single member is never dialled, but etcd records
	// it in the membership; a free loopback port keeps tests apart.
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))

	ec := embed.NewConfig()
	ec.Name = "kiln"
	ec.Dir = s.cfg.DataDir
	ec.ListenClientUrls = []url.URL{*cu}
	ec.AdvertiseClientUrls = []url.URL{*cu}
	ec.ListenPeerUrls = []url.URL{*pu}
	ec.AdvertisePeerUrls = []url.URL{*pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.MaxRequestBytes = DefaultMaxRequestBytes
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.AutoCompactionRetention = "0"
	// Keep snapshots cheap and frequent enough that restart replays little.
	ec.SnapshotCount = 10000
	// The lone member becomes leader when its election timeout runs out.
	// etcd skips all but one tick of it at start, but raft draws the
	// timeout between one and two election timeouts: with the defaults
	// (100 ms ticks, 1 s) the election came 0.1 to 1 s after start, most
	// of a server's time to ready. With no peer to heartbeat, short ticks
	// cost only the ticking; etcd wants the election 5 ticks long at least.
	ec.TickMs = 20
	ec.ElectionMs = 100

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("store: start etcd in %s: %w", s.cfg.DataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("store: etcd: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("store: etcd did not become ready in 60s")
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("store: pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
