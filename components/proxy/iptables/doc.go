// Package iptables is the real proxy.Rules: it writes the proxy's rule
// set into the node's nat and filter tables the way kube-proxy's iptables
// mode does (KILN-SERVICES, KILN-NODEPORTS, KILN-SVC-*, KILN-SEP-* ...;
// see render.go for the chain layout), so `iptables-save` on a kiln node
// reads like one on a Kubernetes node.
//
// Every sync is one `iptables-restore --noflush` transaction: a full Sync
// rewrites every chain of the proxy and deletes stale ones; SyncServices
// rewrites only the chains of the Services that changed and adds or
// deletes their lines in the shared dispatch chains, so a one-Service
// change costs the same with 10 or 10,000 Services. The jumps from
// PREROUTING, OUTPUT, POSTROUTING, INPUT and FORWARD are checked on every
// full Sync (from the iptables-save a first Sync reads anyway, later by
// listing the built-in chains with go-iptables) and the missing ones are
// inserted in the same transaction, so chains and their hooks appear
// together and a sync costs no extra iptables call per jump. The first
// Sync also sets route_localnet, ip_forward and (when br_netfilter is
// there) bridge-nf-call-iptables. Cleanup removes all of it, finding jumps by
// their target so that hooks written by an older kiln go too. Only the
// proxy's chains are touched (the shared ones and KILN-SVC-, -SVL-, -EXT-
// and -SEP-): the container runtime's KILN-MASQ-<bridge> in the same nat
// table is not the proxy's to delete.
//
// It talks to nothing but the iptables tools (iptables-nft or legacy,
// whichever `iptables` is) in the namespace Config.NetNS names.
//
//	rules, err := iptables.New(iptables.Config{})
//	if err != nil { ... }
//	p, err := proxy.New(proxy.Config{Client: cs, Rules: rules, NodeName: node, ...})
//	...
//	err = rules.Cleanup(ctx) // kiln server --cleanup-network
package iptables
