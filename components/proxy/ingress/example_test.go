package ingress_test

import (
	"context"
	"net/netip"

	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy/ingress"
)

// A node serves Ingresses on ports 80 and 443 of every address and shows
// its address in their status.
func Example() {
	run := func(ctx context.Context, cs kubernetes.Interface, nodeIP netip.Addr) error {
		ing, err := ingress.New(ingress.Config{
			Client:    cs,
			Listen:    ingress.DefaultListen,
			TLSListen: ingress.DefaultTLSListen,
			StatusIPs: []netip.Addr{nodeIP},
		})
		if err != nil {
			return err
		}
		return ing.Run(ctx) // blocks until ctx is done
	}
	_ = run
}
