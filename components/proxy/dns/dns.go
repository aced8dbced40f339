package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Informer index names the server adds.
const (
	indexClusterIP = "kiln-dns-clusterip"
	indexService   = "kiln-dns-service"
)

// Server answers DNS queries for the cluster domain from the API's
// Services and EndpointSlices and forwards the rest.
type Server struct {
	domain    string
	ttl       uint32
	upstreams []string
	listen    []string
	pconns    []net.PacketConn
	listeners []net.Listener
	log       *slog.Logger
	// serial is the zone's SOA serial: the server's start, so that it
	// grows across restarts.
	serial uint32

	services   corelisters.ServiceLister
	svcIndex   cache.Indexer
	sliceIndex cache.Indexer
	informers  []cache.SharedIndexInformer
	ownFactory informers.SharedInformerFactory

	udp, tcp *mdns.Client

	ready   chan struct{}
	mu      sync.Mutex
	started bool
}

// New validates cfg, applies defaults and registers the Service and
// EndpointSlice informers with the indexes the server looks names up by.
// It opens no socket and starts nothing.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		domain:    cfg.Domain,
		ttl:       cfg.TTL,
		upstreams: cfg.Upstreams,
		listen:    cfg.Listen,
		pconns:    cfg.PacketConns,
		listeners: cfg.Listeners,
		log:       cfg.Logger.With(logComponent, "dns"),
		serial:    uint32(time.Now().Unix()),
		// Read buffers as large as a message can be: an upstream may
		// answer a query without EDNS with more than 512 bytes.
		udp:   &mdns.Client{Net: "udp", UDPSize: mdns.MaxMsgSize, Timeout: cfg.UpstreamTimeout},
		tcp:   &mdns.Client{Net: "tcp", Timeout: cfg.UpstreamTimeout},
		ready: make(chan struct{}),
	}
	f := cfg.Informers
	if f == nil {
		f = informers.NewSharedInformerFactory(cfg.Client, 0)
		s.ownFactory = f
	}
	svcInf := f.Core().V1().Services().Informer()
	sliceInf := f.Discovery().V1().EndpointSlices().Informer()
	if err := svcInf.AddIndexers(cache.Indexers{indexClusterIP: clusterIPIndex}); err != nil {
		return nil, fmt.Errorf("dns: index services: %w", err)
	}
	if err := sliceInf.AddIndexers(cache.Indexers{indexService: sliceServiceIndex}); err != nil {
		return nil, fmt.Errorf("dns: index endpointslices: %w", err)
	}
	s.services = f.Core().V1().Services().Lister()
	s.svcIndex, s.sliceIndex = svcInf.GetIndexer(), sliceInf.GetIndexer()
	s.informers = []cache.SharedIndexInformer{svcInf, sliceInf}
	return s, nil
}

func clusterIPIndex(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil, nil
	}
	return svc.Spec.ClusterIPs, nil
}

func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok || s.Labels[discoveryv1.LabelServiceName] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[discoveryv1.LabelServiceName]}, nil
}

// Ready is closed once the caches are filled and every socket is served.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run opens the Listen sockets, waits for the caches, serves until ctx is
// done and then closes every socket, its own and the ones in Config. A
// socket that cannot be opened is an error (before the caches are
// waited for); nil means a clean stop, ErrRunTwice a second call.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrRunTwice
	}
	s.started = true
	s.mu.Unlock()

	pconns, listeners := s.pconns, s.listeners
	closeAll := func() {
		for _, pc := range pconns {
			pc.Close()
		}
		for _, ln := range listeners {
			ln.Close()
		}
	}
	for _, addr := range s.listen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns: listen udp %s: %w", addr, err)
		}
		pconns = append(pconns, pc)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns: listen tcp %s: %w", addr, err)
		}
		listeners = append(listeners, ln)
	}

	if s.ownFactory != nil {
		s.ownFactory.Start(ctx.Done())
		defer s.ownFactory.Shutdown()
	}
	synced := make([]cache.InformerSynced, len(s.informers))
	for i, inf := range s.informers {
		synced[i] = inf.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		closeAll()
		return nil // ctx is done before the caches synced: a clean stop
	}

	// One miekg server per socket; each closes its socket on shutdown.
	var servers []*mdns.Server
	for _, pc := range pconns {
		servers = append(servers, &mdns.Server{PacketConn: pc, Handler: s, UDPSize: mdns.MaxMsgSize})
	}
	for _, ln := range listeners {
		servers = append(servers, &mdns.Server{Listener: ln, Handler: s})
	}
	var wg sync.WaitGroup
	started := make(chan struct{}, len(servers))
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		srv.NotifyStartedFunc = func() { started <- struct{}{} }
		wg.Go(func() {
			if err := srv.ActivateAndServe(); err != nil {
				errc <- err
			}
		})
	}
	var runErr error
	for range servers {
		select {
		case <-started:
		case err := <-errc:
			runErr = fmt.Errorf("dns: serve: %w", err)
		}
		if runErr != nil {
			break
		}
	}
	if runErr == nil {
		close(s.ready)
		s.log.Info("serving", logAddrs, s.addrs(pconns, listeners), logUpstreams, s.upstreams, logDomain, s.domain)
		select {
		case <-ctx.Done():
		case err := <-errc:
			runErr = fmt.Errorf("dns: serve: %w", err)
		}
	}
	// Shut down with a short grace for queries in flight; a server
	// that never started reports so, which is not a failure here.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(sctx)
	}
	closeAll()
	wg.Wait()
	if runErr == nil {
		s.log.Info("stopped")
	}
	return runErr
}

func (s *Server) addrs(pconns []net.PacketConn, listeners []net.Listener) []string {
	var out []string
	for _, pc := range pconns {
		out = append(out, "udp/"+pc.LocalAddr().String())
	}
	for _, ln := range listeners {
		out = append(out, "tcp/"+ln.Addr().String())
	}
	return out
}

// ServeDNS answers one query: names in the cluster domain and reverse
// names of ClusterIPs from the caches, everything else from upstream.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	_, udp := w.LocalAddr().(*net.UDPAddr)
	var resp *mdns.Msg
	if len(req.Question) != 1 || req.Opcode != mdns.OpcodeQuery {
		resp = new(mdns.Msg).SetRcode(req, mdns.RcodeNotImplemented)
		if len(req.Question) != 1 {
			resp.Rcode = mdns.RcodeFormatError
		}
	} else if r, ok := s.answer(req); ok {
		resp = r
	} else {
		resp = s.forward(req, udp)
	}
	if udp {
		// Cut an answer to what the client can take over UDP; Truncate
		// sets TC when it drops records, and the client retries over
		// TCP, where it gets everything.
		size := mdns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		s.log.Debug("write answer", logError, err)
	}
}

// forward sends req to the upstreams in turn and returns the first
// answer, or SERVFAIL. A UDP answer with TC set is asked again over TCP,
// so that the client gets the whole answer when it can take it.
func (s *Server) forward(req *mdns.Msg, udp bool) *mdns.Msg {
	var errs []error
	for _, up := range s.upstreams {
		c := s.tcp
		if udp {
			c = s.udp
		}
		resp, _, err := c.Exchange(req, up)
		if err == nil && resp.Truncated && udp {
			resp, _, err = s.tcp.Exchange(req, up)
		}
		if err == nil {
			return resp
		}
		errs = append(errs, fmt.Errorf("%s: %w", up, err))
	}
	if len(s.upstreams) == 0 {
		errs = append(errs, errors.New("no upstream resolvers"))
	}
	s.log.Debug("forward failed", logName, req.Question[0].Name, logError, errors.Join(errs...))
	return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
}
