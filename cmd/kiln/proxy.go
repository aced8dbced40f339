package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/kubelet/containerd"
	"kiln.dev/kiln/components/kubelet/routes"
	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/proxy/ingress"
	"kiln.dev/kiln/components/proxy/iptables"
	"kiln.dev/kiln/config"
)

// startProxy runs this node's proxy (Services to iptables), the cluster
// DNS at cfg.ClusterDNS and, unless both its addresses are "", the
// ingress controller in g until ctx is done, unless the proxy is
// disabled. They share one informer factory, so Services and
// EndpointSlices are watched once. It returns once all are built. The
// proxy and DNS need root, as do ingress ports below 1024.
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
	// The factory is started once every part has registered its
	// informers (and indexes).
	f := informers.NewSharedInformerFactory(cs, 0)
	p, err := proxy.New(proxy.Config{
		Client:      cs,
		Informers:   f,
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
	d, err := dns.New(dns.Config{Client: cs, Informers: f, Listen: []string{net.JoinHostPort(cfg.ClusterDNS, "53")}, Logger: log.With("component", "dns")})
	if err != nil {
		return err
	}
	var ing *ingress.Controller
	if listen, tlsListen := cfg.Ingress(); listen != "" || tlsListen != "" {
		ing, err = ingress.New(ingress.Config{Client: cs, Informers: f, Listen: listen, TLSListen: tlsListen,
			StatusIPs: []netip.Addr{nodeIP}, Logger: log})
		if err != nil {
			return err
		}
	}
	g.Go(func() error {
		f.Start(ctx.Done())
		<-ctx.Done()
		f.Shutdown() // waits for the informers' goroutines
		return nil
	})
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return d.Run(ctx) })
	if ing != nil {
		g.Go(func() error {
			if err := ing.Run(ctx); err != nil {
				return fmt.Errorf("%w (ingressListen, ingressTLSListen: \"\" turns one off)", err)
			}
			return nil
		})
	}
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
