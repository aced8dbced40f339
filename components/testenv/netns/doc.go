// Package netns makes test hosts: "machines" that are Linux network
// namespaces on one Linux bridge, so multi-node tests can run agents each
// with its own address, stop one or cut its link.
//
// NewNetwork makes a bridge in the root namespace holding the first
// address of the network's CIDR; AddHost makes an `ip netns` namespace
// with loopback up, IP forwarding on, and eth0 (one end of a veth pair
// whose other end is on the bridge) holding the next address, with a
// default route via the bridge. Host.Command runs a program inside (nsenter
// --net: the namespace's network, the root's mounts and cgroups), Host.Cut and Host.Restore take the host's link down and
// up. Everything is removed at the test's cleanup: processes left in a
// host's namespace are killed, then the namespaces, veths, bridge and the
// iptables rules that let the bridge's traffic through.
//
// Names are short and random (interface names hold 15 bytes at most), so
// tests of parallel packages never clash; their CIDRs must not overlap.
// Root is required (testenv.Require).
//
//	nw := netns.NewNetwork(t, "mn", "10.77.1.0/24")
//	a := nw.AddHost(t, "a") // a.IP is 10.77.1.2
//	out, err := a.Command(t.Context(), "ping", "-c1", nw.Gateway).CombinedOutput()
package netns
