package iptables

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/internal/nettest"
)

// save returns iptables-save of the namespace.
func save(t *testing.T, ns *nettest.NS) string {
	t.Helper()
	out, err := ns.Exec(t.Context(), "iptables-save")
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

func newRules(t *testing.T, ns *nettest.NS) *Rules {
	t.Helper()
	r, err := New(Config{NetNS: ns.Path, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ruleSet(ports ...proxy.ServicePort) *proxy.RuleSet {
	rs := &proxy.RuleSet{ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), Services: map[types.NamespacedName][]proxy.ServicePort{}}
	for _, sp := range ports {
		rs.Services[sp.Service] = append(rs.Services[sp.Service], sp)
	}
	return rs
}

// TestRules_Sync_inNetns writes rules with the real iptables-restore in a
// namespace of the test's own and reads them back with iptables-save.
func TestRules_Sync_inNetns(t *testing.T) {
	nettest.Require(t)
	ns := nettest.NewNS(t, "kt"+nettest.RunID()+"-ipt")
	r := newRules(t, ns)
	ctx := t.Context()

	web := port("web", func(sp *proxy.ServicePort) { sp.NodePort = 30080; sp.AffinitySeconds = 60 })
	gone := port("gone", func(sp *proxy.ServicePort) { sp.ClusterIP = netip.MustParseAddr("10.43.0.30") })
	empty := port("empty", func(sp *proxy.ServicePort) { sp.ClusterIP = netip.MustParseAddr("10.43.0.31"); sp.Endpoints = nil })
	if err := r.Sync(ctx, ruleSet(web, gone, empty)); err != nil {
		t.Fatal(err)
	}
	out := save(t, ns)
	for _, want := range []string{
		"-A PREROUTING -m comment --comment \"kiln service portals\" -j KILN-SERVICES",
		"-A OUTPUT -m comment --comment \"kiln service portals\" -j KILN-SERVICES",
		"-A POSTROUTING -m comment --comment \"kiln postrouting rules\" -j KILN-POSTROUTING",
		"-j KILN-EXTERNAL-SERVICES", "-j KILN-FORWARD", "-j KILN-FIREWALL",
		":" + ServiceChain(&web), ":" + ServiceChain(&gone), ":" + externalChain(&web),
		"--to-destination 10.42.1.12:8080",
		"shop/empty:http has no endpoints",
		"--probability 0.333333",
		"--rcheck --seconds 60 --reap",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("iptables-save lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}

	// A second Sync does not duplicate the jumps, and puts back one that
	// was removed behind its back.
	if out, err := ns.Exec(ctx, "iptables", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "kiln postrouting rules", "-j", chainPostrouting); err != nil {
		t.Fatalf("delete a jump: %v: %s", err, out)
	}
	if err := r.Sync(ctx, ruleSet(web, gone, empty)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(save(t, ns), "\n")
	for _, j := range jumps {
		n := 0
		for _, l := range lines {
			if j.in([]string{l}) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d jumps %s %s -> %s, want 1", n, j.table, j.chain, j.target)
		}
	}

	// A partial sync: gone is deleted, web loses an endpoint.
	web.Endpoints = web.Endpoints[:2]
	if err := r.SyncServices(ctx, ruleSet(web, empty), []types.NamespacedName{web.Service, gone.Service}); err != nil {
		t.Fatal(err)
	}
	out = save(t, ns)
	if strings.Contains(out, "shop/gone") || strings.Contains(out, ServiceChain(&gone)) {
		t.Error("rules of the deleted Service remain")
	}
	if strings.Contains(out, "10.42.1.12") {
		t.Error("rules of the removed endpoint remain")
	}
	if !strings.Contains(out, "--probability 0.5000000000") {
		t.Error("web's two endpoints are not spread half and half")
	}

	// A restarted proxy (a new Rules) removes the chains of Services
	// deleted while it was down.
	r2 := newRules(t, ns)
	if err := r2.Sync(ctx, ruleSet(empty)); err != nil {
		t.Fatal(err)
	}
	out = save(t, ns)
	if strings.Contains(out, "shop/web") || strings.Contains(out, ServiceChain(&web)) {
		t.Errorf("chains of web survive a full sync without it:\n%s", out)
	}

	// A partial sync that cannot apply (the rule it deletes is not
	// there) fails and asks for a full sync.
	r2.applied[web.Service] = r.applied[web.Service]
	if err := r2.SyncServices(ctx, ruleSet(empty), []types.NamespacedName{web.Service}); err == nil {
		t.Fatal("SyncServices deleting rules that are not there succeeded")
	}
	if err := r2.SyncServices(ctx, ruleSet(empty), nil); !errors.Is(err, ErrNotSynced) {
		t.Errorf("SyncServices after a failure = %v, want ErrNotSynced", err)
	}

	if err := r2.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if out := save(t, ns); strings.Contains(out, "KILN") {
		t.Errorf("KILN rules after Cleanup:\n%s", out)
	}
	// Cleanup of a clean node is not an error.
	if err := r2.Cleanup(ctx); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}

// TestRules_Sync_sysctls checks the kernel settings of the namespace.
func TestRules_Sync_sysctls(t *testing.T) {
	nettest.Require(t)
	ns := nettest.NewNS(t, "kt"+nettest.RunID()+"-sys")
	r := newRules(t, ns)
	if err := r.Sync(t.Context(), ruleSet()); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{sysctlRouteLocalnet, sysctlIPForward} {
		var got []byte
		err := ns.Do(func() error {
			var err error
			got, err = os.ReadFile(path)
			return err
		})
		if err != nil || strings.TrimSpace(string(got)) != "1" {
			t.Errorf("%s = %q (%v), want 1", path, got, err)
		}
	}
}

// TestRules_othersChains checks that the proxy leaves alone a kiln chain
// that is not its own: the container runtime's masquerade chain, hooked
// into POSTROUTING beside the proxy's. A full sync once deleted every
// KILN- chain it had not written, which failed on a node with pods (the
// chain is referenced) and would have dropped the pods' masquerading.
func TestRules_othersChains(t *testing.T) {
	nettest.Require(t)
	ns := nettest.NewNS(t, "kt"+nettest.RunID()+"-oth")
	ctx := t.Context()
	const masq = "KILN-MASQ-KT0"
	for _, args := range [][]string{
		{"-t", "nat", "-N", masq},
		{"-t", "nat", "-A", masq, "-s", "10.42.0.0/24", "!", "-d", "10.42.0.0/24", "-j", "MASQUERADE"},
		{"-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment", "kiln: masquerade pods of kt0", "-j", masq},
	} {
		if out, err := ns.Exec(ctx, "iptables", args...); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	check := func(when string) {
		t.Helper()
		out := save(t, ns)
		for _, want := range []string{":" + masq, "-A POSTROUTING -m comment --comment \"kiln: masquerade pods of kt0\" -j " + masq, "-A " + masq + " -s 10.42.0.0/24"} {
			if !strings.Contains(out, want) {
				t.Errorf("after %s, iptables-save lacks %q:\n%s", when, want, out)
			}
		}
	}

	web := port("web", nil)
	if err := newRules(t, ns).Sync(ctx, ruleSet(web)); err != nil {
		t.Fatal(err)
	}
	check("the first sync")
	// A restarted proxy reads the tables to find stale chains.
	r := newRules(t, ns)
	if err := r.Sync(ctx, ruleSet()); err != nil {
		t.Fatal(err)
	}
	check("a full sync after a restart")
	if err := r.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	check("Cleanup")
	if out := save(t, ns); strings.Contains(out, "KILN-SERVICES") || strings.Contains(out, prefixSVC) {
		t.Errorf("the proxy's chains survive Cleanup:\n%s", out)
	}
}
