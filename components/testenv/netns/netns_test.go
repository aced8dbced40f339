package netns_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/components/testenv/netns"
)

// serve answers every connection on ln with one line: name.
func serve(t *testing.T, ln net.Listener, name string) {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
}

// ask reads the line the server at addr answers, dialing from inside h,
// or from root when h is nil; a second bounds the connect.
func ask(ctx context.Context, h *netns.Host, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var c net.Conn
	var err error
	if h == nil {
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	} else {
		c, err = h.Dial(ctx, "tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func TestNetwork_AddHost_hostsReachEachOtherAndRoot(t *testing.T) {
	nw := netns.NewNetwork(t, "nt", "10.77.250.0/24")
	a, b := nw.AddHost(t, "a"), nw.AddHost(t, "b")
	if a.IP != "10.77.250.2" || b.IP != "10.77.250.3" || nw.Gateway != "10.77.250.1" {
		t.Fatalf("addresses: a %s, b %s, gateway %s", a.IP, b.IP, nw.Gateway)
	}
	for _, name := range []string{nw.Bridge, a.Veth, b.Veth} {
		if len(name) > 15 {
			t.Errorf("interface name %q is longer than 15 bytes", name)
		}
	}
	for _, h := range []*netns.Host{a, b} {
		ln, err := h.Listen("tcp", ":7000")
		if err != nil {
			t.Fatal(err)
		}
		serve(t, ln, h.Name)
	}
	root, err := net.Listen("tcp", nw.Gateway+":0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, root, "root")

	for _, tc := range []struct {
		name string
		from *netns.Host
		addr string
		want string
	}{
		{"a to b", a, b.IP + ":7000", "b"},
		{"b to a", b, a.IP + ":7000", "a"},
		{"a to root", a, root.Addr().String(), "root"},
		{"root to b", nil, b.IP + ":7000", "b"},
		// Each host has its own loopback: a's 127.0.0.1 is a's.
		{"a to its loopback", a, "127.0.0.1:7000", "a"},
	} {
		got, err := ask(t.Context(), tc.from, tc.addr)
		if err != nil || got != tc.want {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}

	// A program run inside sees the host's interfaces and forwarding.
	out, err := a.Command(t.Context(), "cat", "/proc/sys/net/ipv4/ip_forward").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("ip_forward in a: %q, %v", out, err)
	}
	out, err = a.Command(t.Context(), "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), a.IP+"/24") {
		t.Errorf("eth0 in a: %q, %v", out, err)
	}

	// Cut: b is unreachable, and reaches nothing; a still reaches root.
	if err := b.Cut(); err != nil {
		t.Fatal(err)
	}
	if got, err := ask(t.Context(), a, b.IP+":7000"); err == nil {
		t.Errorf("a reached cut b: %q", got)
	}
	if got, err := ask(t.Context(), b, root.Addr().String()); err == nil {
		t.Errorf("cut b reached root: %q", got)
	}
	if got, err := ask(t.Context(), a, root.Addr().String()); err != nil || got != "root" {
		t.Errorf("a to root with b cut: %q, %v", got, err)
	}
	if err := b.Restore(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := ask(t.Context(), a, b.IP+":7000")
		if err == nil && got == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a to restored b: %q, %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNetwork_cleanup_removesEverything: after the subtest's cleanup no
// namespace, interface or process of it is left.
func TestNetwork_cleanup_removesEverything(t *testing.T) {
	var nw *netns.Network
	var h *netns.Host
	var pid int
	t.Run("make", func(t *testing.T) {
		nw = netns.NewNetwork(t, "nt", "10.77.251.0/24")
		h = nw.AddHost(t, "c")
		// A process that would outlive the test (its context's end does
		// not kill it): the host's cleanup must.
		cmd := h.Command(context.WithoutCancel(t.Context()), "sleep", "600")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid = cmd.Process.Pid
		go func() { _ = cmd.Wait() }()
		// nsenter enters the namespace after it starts; until then the
		// process is not the host's yet.
		deadline := time.Now().Add(5 * time.Second)
		for {
			pids, err := h.Pids()
			if err != nil {
				t.Fatal(err)
			}
			if slices.Contains(pids, pid) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d not in %s: %v", pid, h.Netns, pids)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if nw == nil {
		return // skipped
	}
	for _, p := range []string{"/run/netns/" + h.Netns, "/sys/class/net/" + nw.Bridge, "/sys/class/net/" + h.Veth} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there", p)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(b), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("process %d in the host still runs", pid)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestHost_Dial_processStaysOutside: Dials from a host never make the
// whole process one of the host's (its main thread's namespace is what
// `ip netns pids` reads), or a host's cleanup would kill the test.
func TestHost_Dial_processStaysOutside(t *testing.T) {
	nw := netns.NewNetwork(t, "nt", "10.77.249.0/24")
	h := nw.AddHost(t, "d")
	root, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := h.Listen("tcp", "127.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, "d")
	done := make(chan int)
	stop := make(chan struct{})
	go func() {
		inside := 0
		for {
			select {
			case <-stop:
				done <- inside
				return
			default:
			}
			if cur, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", os.Getpid())); cur != root {
				inside++
			}
		}
	}()
	for range 1000 {
		if c, err := h.Dial(t.Context(), "tcp", "127.0.0.1:7000"); err == nil {
			c.Close()
		}
	}
	close(stop)
	if n := <-done; n > 0 {
		t.Errorf("the process's main thread was seen in the host's namespace %d times", n)
	}
}
