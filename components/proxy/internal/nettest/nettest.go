// Package nettest builds throwaway network namespaces for the proxy's
// and the DNS server's end-to-end tests: a "node" namespace with a
// bridge, "pod" namespaces attached to it with veth pairs, and an
// "outside" client, all named uniquely per run and deleted at test end.
// Sockets are opened inside a namespace from a locked OS thread, and stay
// there, so servers and clients run in the test process.
//
// Only tests import it.
package nettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"kiln.dev/kiln/components/testenv"
)

// Require skips (or, under KILN_E2E=require, fails) unless the test can
// make namespaces and write iptables: root, ip and iptables-restore.
func Require(t testing.TB) {
	t.Helper()
	testenv.Require(t, "root", os.Geteuid() == 0)
	for _, tool := range []string{"ip", "iptables-restore", "iptables-save"} {
		_, err := exec.LookPath(tool)
		testenv.Require(t, tool+" on PATH", err == nil)
	}
}

// RunID is a short random string for names unique to this run.
func RunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NS is a network namespace made for a test.
type NS struct {
	Name string
	// Path is /run/netns/Name, for iptables.Config.NetNS.
	Path string
}

// NewNS makes a namespace with loopback up; it is deleted, with every
// link and rule in it, at cleanup.
func NewNS(t testing.TB, name string) *NS {
	t.Helper()
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns := &NS{Name: name, Path: "/run/netns/" + name}
	IP(t, "-n", name, "link", "set", "lo", "up")
	return ns
}

// IP runs the ip tool and fails the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Do runs fn on an OS thread inside ns.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			orig, err := netns.Get()
			if err != nil {
				return err
			}
			defer orig.Close()
			h, err := netns.GetFromName(ns.Name)
			if err != nil {
				return err
			}
			defer h.Close()
			if err := netns.Set(h); err != nil {
				return err
			}
			ferr := fn()
			if err := netns.Set(orig); err != nil {
				return err // the thread stays locked and dies with us
			}
			runtime.UnlockOSThread()
			return ferr
		}()
	}()
	return <-errc
}

// Exec runs a program inside ns and returns its combined output.
func (ns *NS) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out []byte
	err := ns.Do(func() error {
		var err error
		out, err = exec.CommandContext(ctx, name, args...).CombinedOutput()
		return err
	})
	return out, err
}

// Listen opens a listener inside ns, closed at cleanup.
func (ns *NS) Listen(t testing.TB, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// ListenPacket opens a packet socket inside ns, closed at cleanup.
func (ns *NS) ListenPacket(t testing.TB, network, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// Dial connects from inside ns.
func (ns *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var err error
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient is a client whose connections start inside ns, one per
// request (no keep-alive), so that each request is a new connection for
// the Service rules to place.
func (ns *NS) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext:       ns.Dial,
		},
	}
}

// Cluster is a node namespace with a pod bridge, pods on it, and an
// outside client on the node's uplink:
//
//	outside 10.200.0.2 --- 10.200.0.1 node  br0 10.42.0.1/24 --- pod i 10.42.0.(10+i)
//
// The node's default route points at the outside namespace.
type Cluster struct {
	Node, Outside *NS
	Pods          []*NS
	// NodeIP is the node's uplink address.
	NodeIP netip.Addr
	// PodCIDR is the pods' network, the cluster CIDR of the test.
	PodCIDR netip.Prefix
}

// PodIP is the address of pod i.
func (c *Cluster) PodIP(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 42, 0, byte(10 + i)}) }

// NewCluster builds the namespaces and links; prefix makes the names
// unique (use RunID).
func NewCluster(t testing.TB, prefix string, pods int) *Cluster {
	t.Helper()
	c := &Cluster{
		NodeIP:  netip.MustParseAddr("10.200.0.1"),
		PodCIDR: netip.MustParsePrefix("10.42.0.0/16"),
	}
	c.Node = NewNS(t, prefix+"-node")
	c.Outside = NewNS(t, prefix+"-out")
	n := c.Node.Name
	IP(t, "-n", n, "link", "add", "br0", "type", "bridge")
	IP(t, "-n", n, "addr", "add", "10.42.0.1/24", "dev", "br0")
	IP(t, "-n", n, "link", "set", "br0", "up")
	IP(t, "-n", n, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", c.Outside.Name)
	IP(t, "-n", n, "addr", "add", "10.200.0.1/24", "dev", "eth0")
	IP(t, "-n", n, "link", "set", "eth0", "up")
	IP(t, "-n", c.Outside.Name, "addr", "add", "10.200.0.2/24", "dev", "eth0")
	IP(t, "-n", c.Outside.Name, "link", "set", "eth0", "up")
	// A default route, as a real node has: the route lookup for a
	// ClusterIP happens before the nat rules rewrite it, and fails
	// without one.
	IP(t, "-n", n, "route", "add", "default", "via", "10.200.0.2")
	for i := range pods {
		pod := NewNS(t, fmt.Sprintf("%s-pod%d", prefix, i))
		host := fmt.Sprintf("vpod%d", i)
		IP(t, "-n", n, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", pod.Name)
		IP(t, "-n", n, "link", "set", host, "master", "br0")
		// Hairpin lets a pod reach itself through its Service, as the
		// CNI bridge plugin's hairpinMode does.
		IP(t, "-n", n, "link", "set", host, "type", "bridge_slave", "hairpin", "on")
		IP(t, "-n", n, "link", "set", host, "up")
		IP(t, "-n", pod.Name, "addr", "add", c.PodIP(i).String()+"/24", "dev", "eth0")
		IP(t, "-n", pod.Name, "link", "set", "eth0", "up")
		IP(t, "-n", pod.Name, "route", "add", "default", "via", "10.42.0.1")
		c.Pods = append(c.Pods, pod)
	}
	return c
}
