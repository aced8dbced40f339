package main

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/netns"
)

// `kiln agent --cleanup-network` on a machine an agent ran on removes its
// pod bridge (by --bridge-name) and kiln's host-gw routes, and leaves
// other routes alone.
func TestAgent_cleanupNetwork(t *testing.T) {
	bin := testenv.Binary(t)
	b := make([]byte, 1)
	_, _ = rand.Read(b)
	network := netns.NewNetwork(t, "cln", fmt.Sprintf("10.78.%d.0/24", b[0]))
	host := network.AddHost(t, "cln-a")
	ip := func(args ...string) string {
		t.Helper()
		out, err := host.Command(t.Context(), "ip", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	// What an agent leaves: its bridge, a route of kiln's protocol (75)
	// to another node's pods, and one of someone else.
	ip("link", "add", "kiln-cln0", "type", "bridge")
	ip("route", "add", "10.42.9.0/24", "via", network.Gateway, "proto", "75")
	ip("route", "add", "10.42.8.0/24", "via", network.Gateway, "proto", "static")

	out, err := host.Command(t.Context(), bin, "agent", "--cleanup-network", "--bridge-name", "kiln-cln0").CombinedOutput()
	if err != nil {
		t.Fatalf("kiln agent --cleanup-network: %v\n%s", err, out)
	}
	if links := ip("-o", "link", "show"); strings.Contains(links, "kiln-cln0") {
		t.Errorf("the bridge is still there:\n%s", links)
	}
	routes := ip("route", "show")
	if strings.Contains(routes, "10.42.9.0/24") {
		t.Errorf("kiln's route is still there:\n%s", routes)
	}
	if !strings.Contains(routes, "10.42.8.0/24") {
		t.Errorf("another's route was removed:\n%s", routes)
	}
}
