// Package nodeipam gives every Node a pod CIDR, as kube-controller-manager's
// node-ipam controller with the range allocator does: each Node without
// spec.podCIDR gets the lowest free block of Config.NodeMaskSize bits from
// Config.ClusterCIDR, written to spec.podCIDR and spec.podCIDRs.
//
// No block is handed out twice. Before its worker starts, Run marks every
// block already held by a Node in the informer cache; allocations are made
// by one worker, one at a time, and a block is released only when its Node
// is gone. A Node that already has a podCIDR inside the range keeps it; one
// outside the range is left alone and logged. When the range is full the
// Node gets no CIDR, a CIDRNotAvailable Event is recorded and the Node is
// retried with backoff, and again as soon as a block is released.
//
//	c, err := nodeipam.New(nodeipam.Config{Client: cs, Informers: f})
//	f.Start(ctx.Done())
//	err = c.Run(ctx)
package nodeipam
