// Package routes keeps the host-gw routes of the cross-node pod network, as
// flannel's host-gw backend does: for every other Node with a
// spec.podCIDR and an InternalIP on a directly connected subnet, this host
// has the route "podCIDR via InternalIP". Pods on different nodes then
// reach each other without encapsulation; the peer's kernel forwards the
// packet into its pod bridge.
//
// The routes are kiln's by their protocol number, Protocol (0x4b): a sync
// lists only the routes with that protocol, deletes the ones no Node wants
// any more and replaces the wanted ones, so routes of other owners (the
// kernel's, DHCP's, a person's) are never touched, and a podCIDR that
// another owner already routes is left to that owner and logged. A Node
// whose InternalIP is not on a connected subnet gets no route (host-gw
// needs L2 adjacency) and is logged.
//
// The package talks to the API server (a Node informer, nothing else) and
// to the kernel through iproute2's `ip`, optionally in a named network
// namespace (Config.Netns, for tests). When Run returns the routes stay,
// so pods keep talking while the agent restarts; Cleanup removes them.
//
//	r, err := routes.New(routes.Config{Client: cs, NodeName: "node-a"})
//	err = r.Run(ctx) // blocks until ctx is done
package routes
