package proxy_test

import (
	"context"
	"net/netip"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/proxy/iptables"
)

// On a node, kiln runs the proxy with iptables rules beside the cluster
// DNS server, which listens on a local link holding the DNS address.
func Example() {
	run := func(ctx context.Context, cs kubernetes.Interface, node string, nodeIP netip.Addr) error {
		dnsIP := netip.MustParseAddr("10.43.0.10")
		rules, err := iptables.New(iptables.Config{})
		if err != nil {
			return err
		}
		p, err := proxy.New(proxy.Config{
			Client: cs, Rules: rules, NodeName: node,
			NodeIPs:     []netip.Addr{nodeIP},
			ClusterCIDR: netip.MustParsePrefix("10.42.0.0/16"),
			ClusterDNS:  dnsIP,
		})
		if err != nil {
			return err
		}
		if err := dns.EnsureInterface(dns.DefaultInterface, dnsIP); err != nil {
			return err
		}
		d, err := dns.New(dns.Config{Client: cs, Listen: []string{netip.AddrPortFrom(dnsIP, 53).String()}})
		if err != nil {
			return err
		}
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return p.Run(ctx) })
		g.Go(func() error { return d.Run(ctx) })
		return g.Wait() // blocks until ctx is done
	}
	_ = run
}
