package routes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/kubelet/routes"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/netns"
)

// hostRoutes lists the host's main table as "dst via gw proto p" lines.
func hostRoutes(t *testing.T, h *netns.Host) []string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "ip", "-n", h.Netns, "-4", "-j", "route", "show", "table", "main").Output()
	if err != nil {
		t.Fatalf("ip route: %v", err)
	}
	var rs []struct{ Dst, Gateway, Protocol string }
	if err := json.Unmarshal(out, &rs); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rs {
		if r.Gateway != "" && r.Dst != "default" {
			if r.Protocol == "" {
				r.Protocol = "boot" // ip -j leaves out the default protocol
			}
			lines = append(lines, fmt.Sprintf("%s via %s proto %s", r.Dst, r.Gateway, r.Protocol))
		}
	}
	slices.Sort(lines)
	return lines
}

func waitRoutes(t *testing.T, h *netns.Host, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := hostRoutes(t, h)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes of %s:\n  %s\nwant:\n  %s", h.Name, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func putNode(t *testing.T, cs kubernetes.Interface, name, podCIDR, ip string) {
	t.Helper()
	ctx := t.Context()
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		n, err = cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	n.Spec.PodCIDR = podCIDR
	if n, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}}
	if ip != "" {
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip})
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func mustIP(t *testing.T, h *netns.Host, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(t.Context(), "ip", append([]string{"-n", h.Netns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// TestRoutes_Run_followsNodes: in a namespace of its own, with Nodes in a
// real API server, routes appear for other Nodes on the host's subnet,
// change with their address, go with them, stay when Run stops and go at
// Cleanup; routes of other protocols are never touched, not even one for
// a Node's pod CIDR.
func TestRoutes_Run_followsNodes(t *testing.T) {
	nw := netns.NewNetwork(t, "rt", "10.77.252.0/24")
	h := nw.AddHost(t, "self")
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))

	// Foreign routes: one elsewhere, one for the pod CIDR of node "taken".
	mustIP(t, h, "route", "add", "10.99.0.0/24", "via", nw.Gateway)
	mustIP(t, h, "route", "add", "10.42.9.0/24", "via", nw.Gateway, "proto", "static")
	foreign := []string{"10.99.0.0/24 via " + nw.Gateway + " proto boot", "10.42.9.0/24 via " + nw.Gateway + " proto static"}

	putNode(t, cs, "self", "10.42.0.0/24", h.IP)
	putNode(t, cs, "peer-1", "10.42.1.0/24", "10.77.252.50")
	putNode(t, cs, "peer-2", "10.42.2.0/24", "10.77.252.51")
	putNode(t, cs, "far", "10.42.3.0/24", "192.0.2.77") // not on a connected subnet
	putNode(t, cs, "joining", "", "10.77.252.52")       // no pod CIDR yet
	putNode(t, cs, "taken", "10.42.9.0/24", "10.77.252.53")

	r, err := routes.New(routes.Config{Client: cs, NodeName: "self", Netns: h.Netns, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	own := func(dst, via string) string { return dst + " via " + via + " proto 75" }
	waitRoutes(t, h, append([]string{own("10.42.1.0/24", "10.77.252.50"), own("10.42.2.0/24", "10.77.252.51")}, foreign...)...)

	// A second Run is refused.
	if err := r.Run(ctx); err != routes.ErrRunTwice {
		t.Errorf("second Run: %v, want ErrRunTwice", err)
	}

	// peer-1 moves, joining gets its CIDR, peer-2 goes.
	putNode(t, cs, "peer-1", "10.42.1.0/24", "10.77.252.60")
	putNode(t, cs, "joining", "10.42.4.0/24", "10.77.252.52")
	if err := cs.CoreV1().Nodes().Delete(t.Context(), "peer-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, h, append([]string{own("10.42.1.0/24", "10.77.252.60"), own("10.42.4.0/24", "10.77.252.52")}, foreign...)...)

	// A route of ours deleted behind kiln's back comes back: the next
	// Node change (or the periodic resync) finds it missing.
	mustIP(t, h, "route", "del", "10.42.4.0/24")
	putNode(t, cs, "far", "10.42.3.0/24", "192.0.2.78")
	waitRoutes(t, h, append([]string{own("10.42.1.0/24", "10.77.252.60"), own("10.42.4.0/24", "10.77.252.52")}, foreign...)...)

	// Stopped: the routes stay (pods keep talking across a restart).
	stop()
	waitRoutes(t, h, append([]string{own("10.42.1.0/24", "10.77.252.60"), own("10.42.4.0/24", "10.77.252.52")}, foreign...)...)

	// Cleanup takes ours only.
	if err := r.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitRoutes(t, h, foreign...)
}

func TestNew_validates(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for _, tc := range []struct {
		name string
		cfg  routes.Config
	}{
		{"no client", routes.Config{NodeName: "a"}},
		{"no node name", routes.Config{Client: env.Clientset}},
		{"negative resync", routes.Config{Client: env.Clientset, NodeName: "a", ResyncPeriod: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := routes.New(tc.cfg); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}
