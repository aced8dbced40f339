package ingress

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// syncStatusOne takes one key off the status queue and syncs it; false
// means the queue is shut down.
func (c *Controller) syncStatusOne(ctx context.Context) bool {
	key, quit := c.status.Get()
	if quit {
		return false
	}
	defer c.status.Done(key)
	if err := c.syncStatus(ctx, key); err != nil {
		if ctx.Err() == nil {
			c.log.Debug("status sync failed, retrying", logIngress, key, logError, err)
		}
		c.status.AddRateLimited(key)
		return true
	}
	c.status.Forget(key)
	return true
}

// syncStatus puts this node's addresses into the load-balancer status of
// the Ingress key if it is served, and takes them out if not; the other
// nodes' entries stay. Nodes race on the same object: a conflict is
// retried against the newer version from the cache.
func (c *Controller) syncStatus(ctx context.Context, key string) error {
	if len(c.statusIPs) == 0 {
		return nil
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	ing, err := c.ingresses.Ingresses(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	want, changed := mergeStatus(ing.Status.LoadBalancer.Ingress, c.statusIPs, c.ourClasses().serves(ing))
	if !changed {
		return nil
	}
	next := ing.DeepCopy()
	next.Status.LoadBalancer.Ingress = want
	if _, err := c.client.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, next, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	c.log.Debug("status updated", logIngress, key)
	return nil
}

// mergeStatus returns the load-balancer entries with the node's IPs in
// (serving) or out, sorted, and whether that differs from cur. Entries
// of other nodes, and hostnames, are kept.
func mergeStatus(cur []networkingv1.IngressLoadBalancerIngress, own []netip.Addr, serving bool) ([]networkingv1.IngressLoadBalancerIngress, bool) {
	mine := map[string]bool{}
	for _, ip := range own {
		mine[ip.String()] = true
	}
	present := map[string]bool{}
	var out []networkingv1.IngressLoadBalancerIngress
	for _, e := range cur {
		if mine[e.IP] {
			present[e.IP] = true
			if !serving {
				continue
			}
		}
		out = append(out, e)
	}
	changed := serving && len(present) < len(mine) || !serving && len(present) > 0
	if !changed {
		return cur, false
	}
	if serving {
		for ip := range mine {
			if !present[ip] {
				out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
			}
		}
	}
	slices.SortFunc(out, func(a, b networkingv1.IngressLoadBalancerIngress) int {
		return cmp.Or(cmp.Compare(a.IP, b.IP), cmp.Compare(a.Hostname, b.Hostname))
	})
	return out, true
}
