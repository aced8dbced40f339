package dns_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/proxy/internal/nettest"
)

func TestEnsureInterface(t *testing.T) {
	nettest.Require(t)
	ns := nettest.NewNS(t, "kt"+nettest.RunID()+"-dns")
	ip := netip.MustParseAddr("10.43.0.10")
	show := func() string {
		out, _ := exec.Command("ip", "-n", ns.Name, "-4", "addr", "show", "dev", dns.DefaultInterface).CombinedOutput()
		return string(out)
	}
	for range 2 { // the second call changes nothing
		if err := ns.Do(func() error { return dns.EnsureInterface(dns.DefaultInterface, ip) }); err != nil {
			t.Fatal(err)
		}
		out := show()
		if strings.Count(out, "inet 10.43.0.10/32") != 1 || !strings.Contains(out, ",UP") {
			t.Fatalf("link after EnsureInterface:\n%s", out)
		}
	}
	for range 2 { // deleting a missing link is not an error
		if err := ns.Do(func() error { return dns.DeleteInterface(dns.DefaultInterface) }); err != nil {
			t.Fatal(err)
		}
	}
	if out := show(); !strings.Contains(out, "does not exist") {
		t.Errorf("link after DeleteInterface:\n%s", out)
	}
}
