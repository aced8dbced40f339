package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/kubelet/containerd"
	"kiln.dev/kiln/components/kubelet/routes"
	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/proxy/iptables"
	"kiln.dev/kiln/config"
)

// startProxy runs this node's proxy (Services to iptables) and the
// cluster DNS at cfg.ClusterDNS in g until ctx is done, unless the proxy
// is disabled. It returns once both are built. Both need root.
func startProxy(ctx context.Context, g *errgroup.Group, cfg *config.Config, rc *rest.Config, log *slog.Logger) error {
	if cfg.Disabled(config.ComponentProxy) {
		return nil
	}
	nodeIP, err := netip.ParseAddr(cfg.NodeIP)
	if err != nil {
		return fmt.Errorf("nodeIP: %w", err)
	}
	clusterCIDR, err := netip.ParsePrefix(cfg.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("clusterCIDR: %w", err)
	}
	dnsIP, err := netip.ParseAddr(cfg.ClusterDNS)
	if err != nil {
		return fmt.Errorf("clusterDNS: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	plog := log.With("component", "proxy")
	rules, err := iptables.New(iptables.Config{Logger: plog})
	if err != nil {
		return err
	}
	p, err := proxy.New(proxy.Config{
		Client:      cs,
		Rules:       rules,
		NodeName:    cfg.NodeName,
		NodeIPs:     []netip.Addr{nodeIP},
		ClusterCIDR: clusterCIDR,
		ClusterDNS:  dnsIP,
		Logger:      plog,
	})
	if err != nil {
		return err
	}
	// The DNS address lives on a link of its own, as NodeLocal DNSCache
	// does: pods reach it through their default route via the node.
	if err := dns.EnsureInterface(dns.DefaultInterface, dnsIP); err != nil {
		return fmt.Errorf("cluster DNS interface: %w", err)
	}
	d, err := dns.New(dns.Config{Client: cs, Listen: []string{net.JoinHostPort(cfg.ClusterDNS, "53")}, Logger: log.With("component", "dns")})
	if err != nil {
		return err
	}
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return d.Run(ctx) })
	return nil
}

// cleanupNetwork removes every iptables chain and rule of the proxy, the
// cluster DNS link, the pod network's bridge (bridge, "" for the default)
// and masquerade chain, and the host-gw routes to other nodes: what
// `kiln server --cleanup-network` and `kiln agent --cleanup-network` do
// before an uninstall.
func cleanupNetwork(ctx context.Context, bridge string, log *slog.Logger) error {
	rules, err := iptables.New(iptables.Config{Logger: log})
	if err != nil {
		return err
	}
	return errors.Join(rules.Cleanup(ctx), dns.DeleteInterface(dns.DefaultInterface), containerd.CleanupNetwork(bridge),
		routes.CleanupAll(ctx, log))
}
