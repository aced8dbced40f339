package join

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds one connection attempt, so a server cut off from the
// network costs the next one a few seconds, not the kernel's minutes.
const dialTimeout = 5 * time.Second

// A server that vanishes without closing its connections (power loss, a
// cut link) must not hold the agent for long: client-go's HTTP/2 pings
// notice only after 45 s, beyond a node's grace period. Keepalive probes
// end an idle connection (a quiet watch) after about deadAfter, and
// TCP_USER_TIMEOUT one whose sent data goes unacknowledged as long; the
// next request then dials, and the dialer moves on to another server.
const (
	keepAliveIdle     = 5 * time.Second
	keepAliveInterval = 3 * time.Second
	keepAliveCount    = 3
	deadAfter         = keepAliveIdle + keepAliveCount*keepAliveInterval
)

// failoverDialer dials the API servers instead of the address asked for:
// the last one that answered first, then the others in order. Every
// server's certificate names ServerName, so one TLS config fits all of
// them. One dialer is shared by every client of an agent, so they all move
// to a new server together.
type failoverDialer struct {
	// addrs are host:port; never empty, never modified.
	addrs []string
	d     net.Dialer

	mu   sync.Mutex
	last int // index into addrs of the last server that answered
}

func newFailoverDialer(addrs []string) *failoverDialer {
	return &failoverDialer{addrs: addrs, d: net.Dialer{
		Timeout: dialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		},
		Control: setUserTimeout,
	}}
}

// DialContext connects to the first server that answers; address is
// ignored.
func (f *failoverDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	f.mu.Lock()
	start := f.last
	f.mu.Unlock()
	var errs []error
	for i := range f.addrs {
		idx := (start + i) % len(f.addrs)
		conn, err := f.d.DialContext(ctx, network, f.addrs[idx])
		if err == nil {
			f.mu.Lock()
			f.last = idx
			f.mu.Unlock()
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("no API server reachable: %w", errors.Join(errs...))
}
