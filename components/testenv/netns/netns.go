package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"kiln.dev/kiln/components/testenv"
)

// maxHostName bounds a host's name: the root-side veth is "kv" + the
// network's 6 hex digits + "-" + the host's name, at most 15 bytes.
const maxHostName = 6

// killTimeout bounds the wait for a host's processes to die at cleanup.
const killTimeout = 10 * time.Second

// Network is a Linux bridge in the root namespace and the hosts on it.
type Network struct {
	// Name is the caller's name, part of every namespace's name.
	Name string
	// Bridge is the bridge interface in the root namespace.
	Bridge string
	// CIDR is the network's subnet, e.g. 10.77.1.0/24.
	CIDR *net.IPNet
	// Gateway is the bridge's address, the first of CIDR: the root
	// namespace as the hosts see it (a server listening on it is reachable
	// from every host).
	Gateway string

	id string // random hex, in every interface's name

	mu    sync.Mutex
	next  net.IP // the next host's address
	hosts map[string]*Host
}

// Host is one network namespace on a Network.
type Host struct {
	// Name is the host's short name given to AddHost.
	Name string
	// Netns is the `ip netns` name of the host's namespace.
	Netns string
	// IP is eth0's address inside.
	IP string
	// Veth is the root-side end of the host's link, on the bridge.
	Veth string

	network *Network
}

// NewNetwork makes the bridge of a network on cidr (an IPv4 prefix of at
// most /30) in the root namespace, with the first address of cidr, and
// removes it at cleanup. It skips (or fails under KILN_E2E=require) when
// not root.
func NewNetwork(t testing.TB, name, cidr string) *Network {
	t.Helper()
	testenv.Require(t, "root", os.Geteuid() == 0)
	for _, bin := range []string{"ip", "nsenter"} {
		_, err := exec.LookPath(bin)
		testenv.Require(t, bin+" on PATH", err == nil)
	}
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil || ipnet.IP.To4() == nil {
		t.Fatalf("netns: cidr %q is not an IPv4 CIDR", cidr)
	}
	if ones, _ := ipnet.Mask.Size(); ones > 30 {
		t.Fatalf("netns: cidr %q has no room for hosts", cidr)
	}
	// Two bridges on one subnet would split the root's route to it: a
	// network left by a test that crashed before its cleanup makes this
	// one's hosts unreachable, which is better said plainly.
	if ifc, addr := subnetInUse(ipnet); ifc != "" {
		t.Fatalf("netns: %s overlaps %s of interface %s in the root namespace (left by a crashed test? `ip link del %s`)", cidr, addr, ifc, ifc)
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	gw := nthIP(ipnet.IP, 1)
	ones, _ := ipnet.Mask.Size()
	n := &Network{Name: name, Bridge: "kb" + id, CIDR: ipnet, Gateway: gw.String(), id: id,
		next: nthIP(ipnet.IP, 2), hosts: map[string]*Host{}}

	// Cleanup is registered before anything is made, so a half-made
	// network goes too; it runs after the hosts' cleanups (LIFO).
	t.Cleanup(func() { n.cleanup(t) })
	mustRun(t, "ip", "link", "add", n.Bridge, "type", "bridge")
	mustRun(t, "ip", "addr", "add", gw.String()+"/"+strconv.Itoa(ones), "dev", n.Bridge)
	mustRun(t, "ip", "link", "set", n.Bridge, "up")
	// Bridged traffic between hosts passes root's FORWARD chain when
	// bridge-nf-call-iptables is on, and hosts talk to root's INPUT: a
	// DROP policy (docker sets one) must not eat either.
	for _, rule := range n.rules() {
		if _, err := exec.LookPath("iptables"); err != nil {
			break
		}
		mustRun(t, append([]string{"iptables", "-w", "-I"}, rule...)...)
	}
	return n
}

// rules are the iptables rules (chain first) that let the bridge's
// traffic through.
func (n *Network) rules() [][]string {
	c := []string{"-m", "comment", "--comment", "kiln test network " + n.Bridge, "-j", "ACCEPT"}
	return [][]string{
		append([]string{"FORWARD", "-i", n.Bridge}, c...),
		append([]string{"FORWARD", "-o", n.Bridge}, c...),
		append([]string{"INPUT", "-i", n.Bridge}, c...),
	}
}

func (n *Network) cleanup(t testing.TB) {
	for _, rule := range n.rules() {
		// -D of a rule that is not there fails; nothing else to undo.
		_ = exec.Command("iptables", append([]string{"-w", "-D"}, rule...)...).Run()
	}
	if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", n.Bridge).CombinedOutput(); err != nil {
			t.Errorf("netns: delete bridge %s: %v: %s", n.Bridge, err, bytes.TrimSpace(out))
		}
	}
}

// AddHost makes host name (at most 6 bytes, unique in the network) on the
// network: namespace, veth pair, eth0 with the next address and a default
// route via the bridge, lo up, IP forwarding on. It is removed at cleanup,
// with every process still in its namespace.
func (n *Network) AddHost(t testing.TB, name string) *Host {
	t.Helper()
	if name == "" || len(name) > maxHostName {
		t.Fatalf("netns: host name %q must have 1 to %d bytes", name, maxHostName)
	}
	n.mu.Lock()
	if _, ok := n.hosts[name]; ok {
		n.mu.Unlock()
		t.Fatalf("netns: host %q already on network %s", name, n.Name)
	}
	ip := n.next
	if !n.CIDR.Contains(ip) || ip.Equal(broadcast(n.CIDR)) {
		n.mu.Unlock()
		t.Fatalf("netns: network %s is full", n.Name)
	}
	n.next = nthIP(ip, 1)
	h := &Host{Name: name, Netns: n.Name + "-" + n.id + "-" + name, IP: ip.String(), Veth: "kv" + n.id + "-" + name, network: n}
	n.hosts[name] = h
	n.mu.Unlock()

	ones, _ := n.CIDR.Mask.Size()
	peer := "kp" + n.id + "-" + name // inside end until renamed to eth0
	t.Cleanup(func() { h.cleanup(t) })
	mustRun(t, "ip", "netns", "add", h.Netns)
	mustRun(t, "ip", "link", "add", h.Veth, "type", "veth", "peer", "name", peer)
	mustRun(t, "ip", "link", "set", peer, "netns", h.Netns)
	mustRun(t, "ip", "link", "set", h.Veth, "master", n.Bridge)
	mustRun(t, "ip", "link", "set", h.Veth, "up")
	mustRun(t, "ip", "-n", h.Netns, "link", "set", peer, "name", "eth0")
	mustRun(t, "ip", "-n", h.Netns, "addr", "add", h.IP+"/"+strconv.Itoa(ones), "dev", "eth0")
	mustRun(t, "ip", "-n", h.Netns, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", h.Netns, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", h.Netns, "route", "add", "default", "via", n.Gateway)
	// Forwarding is per namespace: a host routes its pods' traffic.
	mustRun(t, "ip", "netns", "exec", h.Netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	return h
}

// Command is exec.CommandContext of name and args inside the host's
// network namespace, and only that: the mount namespace, /sys and the
// cgroups stay the root's. `ip netns exec` is not used because it
// remounts /sys, which hides /sys/fs/cgroup from runc; the price is that
// /sys/class/net inside shows the root's interfaces (netlink, /proc/net
// and /proc/sys/net are the host's own).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=/run/netns/" + h.Netns, "--", name}, args...)...)
}

// Cut takes the host's link down on the bridge side: the host is cut off
// from every other host and the root namespace, as a pulled cable, while
// its processes keep running.
func (h *Host) Cut() error { return run("ip", "link", "set", h.Veth, "down") }

// Restore brings back a link taken down by Cut.
func (h *Host) Restore() error { return run("ip", "link", "set", h.Veth, "up") }

// Pids returns the processes in the host's namespace.
func (h *Host) Pids() ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", h.Netns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", h.Netns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// cleanup kills what is left in the namespace, then deletes it; its veth
// pair goes with its inside end.
func (h *Host) cleanup(t testing.TB) {
	if _, err := os.Stat("/run/netns/" + h.Netns); err != nil {
		// Never made, or made with its veth only.
		_ = exec.Command("ip", "link", "del", h.Veth).Run()
		return
	}
	deadline := time.Now().Add(killTimeout)
	for {
		pids, err := h.Pids()
		if err != nil || len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("netns: processes %v still in %s after %s", pids, h.Netns, killTimeout)
			break
		}
		self := os.Getpid()
		pids = slices.DeleteFunc(pids, func(p int) bool { return p == self })
		if len(pids) == 0 {
			// Only this process (Host.do keeps its main thread out, but
			// never kill the test itself).
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := exec.Command("ip", "netns", "del", h.Netns).CombinedOutput(); err != nil {
		t.Errorf("netns: delete %s: %v: %s", h.Netns, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat("/sys/class/net/" + h.Veth); err == nil {
		_ = exec.Command("ip", "link", "del", h.Veth).Run()
	}
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func mustRun(t testing.TB, args ...string) {
	t.Helper()
	if err := run(args...); err != nil {
		t.Fatalf("netns: %v", err)
	}
}

// nthIP is ip + n (IPv4).
func nthIP(ip net.IP, n uint32) net.IP {
	v := ip.To4()
	x := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	x += n
	return net.IPv4(byte(x>>24), byte(x>>16), byte(x>>8), byte(x)).To4()
}

func broadcast(n *net.IPNet) net.IP {
	ip := n.IP.To4()
	out := make(net.IP, 4)
	for i := range out {
		out[i] = ip[i] | ^n.Mask[i]
	}
	return out
}

// Listen opens a listener inside the host's namespace, served by the
// calling process: a socket belongs to the namespace it was made in,
// whichever thread uses it later. addr is as net.Listen's, e.g. ":0".
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.do(func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Dial connects from inside the host's namespace; ctx bounds the
// connect only.
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// do runs f on a thread moved into the host's namespace. The thread is
// moved back after; if that fails it stays locked, and the Go runtime
// ends it rather than run other goroutines in the wrong namespace.
func (h *Host) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// The main thread: while it is inside, the whole process
			// counts as the host's (`ip netns pids` reads the main
			// thread's namespace), and the host's cleanup would kill it.
			// Holding it, hand f to another goroutine, which therefore
			// runs on another thread.
			errc <- h.do(f)
			runtime.UnlockOSThread()
			return
		}
		orig, err := vnetns.Get()
		if err != nil {
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		ns, err := vnetns.GetFromName(h.Netns)
		if err != nil {
			errc <- fmt.Errorf("netns %s: %w", h.Netns, err)
			return
		}
		defer ns.Close()
		if err := vnetns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", h.Netns, err)
			return
		}
		ferr := f()
		if err := vnetns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", h.Netns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// subnetInUse returns the interface and address of a root-namespace
// address whose subnet overlaps n, or "".
func subnetInUse(n *net.IPNet) (iface, addr string) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", ""
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && (ipn.Contains(n.IP) || n.Contains(ipn.IP)) {
				return ifc.Name, ipn.String()
			}
		}
	}
	return "", ""
}
