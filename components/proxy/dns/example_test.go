package dns_test

import (
	"context"
	"net/netip"

	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy/dns"
)

// A node serves the cluster DNS on a local link that holds the DNS
// address; upstreams default to the host's /etc/resolv.conf.
func Example() {
	run := func(ctx context.Context, cs kubernetes.Interface) error {
		ip := netip.MustParseAddr("10.43.0.10")
		if err := dns.EnsureInterface(dns.DefaultInterface, ip); err != nil {
			return err
		}
		srv, err := dns.New(dns.Config{Client: cs, Listen: []string{"10.43.0.10:53"}})
		if err != nil {
			return err
		}
		return srv.Run(ctx) // blocks until ctx is done
	}
	_ = run
}
