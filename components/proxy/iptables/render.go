package iptables

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/proxy"
)

// The rule text follows kube-proxy's iptables mode chain for chain, so
// that anyone who has read `iptables-save` on a Kubernetes node can read
// kiln's. Per service port, in nat:
//
//	KILN-SERVICES  -d clusterIP --dport port        -> KILN-SVC-x (or KILN-SVL-x, internalTrafficPolicy Local)
//	KILN-NODEPORTS --dport nodePort                 -> KILN-EXT-x
//	KILN-EXT-x     mark masq, -> KILN-SVC-x         (externalTrafficPolicy Cluster)
//	               pods and local sources -> KILN-SVC-x, the rest -> KILN-SVL-x (Local)
//	KILN-SVC-x     mark masq unless from the cluster CIDR; then per endpoint
//	               -m recent (affinity) and -m statistic 1/n, 1/(n-1) ... -> KILN-SEP-y
//	KILN-SEP-y     mark masq if from the endpoint itself (hairpin); DNAT
//
// and in filter, REJECT in KILN-SERVICES / KILN-EXTERNAL-SERVICES for a
// port with no endpoints to send it to, so a client is refused at once
// rather than left to time out.

// rule is one rule of a shared chain: "-A <chain> <spec>".
type rule struct {
	chain, spec string
}

// chain is one of a service's own chains and its rules' specs.
type chain struct {
	name  string
	rules []string
}

// serviceRules are the rules of one Service.
type serviceRules struct {
	// natShared and filterShared are its rules in the chains all Services
	// share (dispatch and reject). Their order within a chain does not
	// matter: no two Services match the same packets.
	natShared, filterShared []rule
	// chains are its own nat chains.
	chains []chain
}

// ownChains returns the names of the Service's own chains.
func (s *serviceRules) ownChains() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.chains))
	for i, c := range s.chains {
		out[i] = c.name
	}
	return out
}

// renderer holds the node-wide settings the rules depend on.
type renderer struct {
	clusterCIDR netip.Prefix
	randomFully bool
}

// service renders the rules of one Service's ports.
func (r renderer) service(ports []proxy.ServicePort) *serviceRules {
	out := &serviceRules{}
	for i := range ports {
		r.servicePort(out, &ports[i])
	}
	return out
}

func (r renderer) servicePort(out *serviceRules, sp *proxy.ServicePort) {
	name := sp.String()
	proto := strings.ToLower(string(sp.Protocol))
	match := fmt.Sprintf("-m %s -p %s", proto, proto)
	clusterIP := fmt.Sprintf("%s -d %s --dport %d", match, sp.ClusterIP, sp.Port)

	var local []proxy.Endpoint
	for _, ep := range sp.Endpoints {
		if ep.Local {
			local = append(local, ep)
		}
	}
	all := sp.Endpoints
	svc, svl := ServiceChain(sp), localChain(sp)
	internal, internalEPs := svc, all
	if sp.InternalLocal {
		internal, internalEPs = svl, local
	}
	hasNodePort := sp.NodePort != 0
	// KILN-SVC is needed for ClusterIP traffic with the Cluster policy and
	// for NodePort traffic (with the Local policy, pods' and the node's
	// own NodePort traffic goes cluster-wide, as kube-proxy sends it).
	useSVC := len(all) > 0 && (!sp.InternalLocal || hasNodePort)
	useSVL := len(local) > 0 && (sp.InternalLocal || hasNodePort && sp.ExternalLocal)

	// ClusterIP.
	if len(internalEPs) > 0 {
		out.natShared = append(out.natShared, rule{chainServices,
			fmt.Sprintf(`-m comment --comment "%s cluster IP" %s -j %s`, name, clusterIP, internal)})
	} else {
		out.filterShared = append(out.filterShared, rule{chainServices,
			fmt.Sprintf(`-m comment --comment "%s has no endpoints" %s -j REJECT`, name, clusterIP)})
	}

	// NodePort.
	if hasNodePort {
		nodePort := fmt.Sprintf("%s --dport %d", match, sp.NodePort)
		switch {
		case len(all) == 0:
			out.filterShared = append(out.filterShared, rule{chainExternalServices,
				fmt.Sprintf(`-m comment --comment "%s has no endpoints" -m addrtype --dst-type LOCAL %s -j REJECT`, name, nodePort)})
		default:
			ext := externalChain(sp)
			out.natShared = append(out.natShared, rule{chainNodePorts,
				fmt.Sprintf(`-m comment --comment %s %s -j %s`, name, nodePort, ext)})
			c := chain{name: ext}
			if !sp.ExternalLocal {
				c.rules = append(c.rules,
					fmt.Sprintf(`-m comment --comment "masquerade traffic for %s external destinations" -j %s`, name, chainMarkMasq),
					"-j "+svc)
			} else {
				if r.clusterCIDR.IsValid() {
					c.rules = append(c.rules, fmt.Sprintf(`-m comment --comment "pod traffic for %s external destinations" -s %s -j %s`, name, r.clusterCIDR, svc))
				}
				c.rules = append(c.rules,
					fmt.Sprintf(`-m comment --comment "masquerade LOCAL traffic for %s external destinations" -m addrtype --src-type LOCAL -j %s`, name, chainMarkMasq),
					fmt.Sprintf(`-m comment --comment "route LOCAL traffic for %s external destinations" -m addrtype --src-type LOCAL -j %s`, name, svc))
				if len(local) > 0 {
					c.rules = append(c.rules, "-j "+svl)
				} else {
					// Not DNATed here, the packet reaches filter still
					// addressed to the node, and is refused there.
					out.filterShared = append(out.filterShared, rule{chainExternalServices,
						fmt.Sprintf(`-m comment --comment "%s has no local endpoints" -m addrtype --dst-type LOCAL %s -j REJECT`, name, nodePort)})
				}
			}
			out.chains = append(out.chains, c)
		}
	}

	// The policy chains and the endpoint chains they spread over.
	masq := ""
	if r.clusterCIDR.IsValid() {
		masq = fmt.Sprintf(`-m comment --comment "%s cluster IP" %s ! -s %s -j %s`, name, clusterIP, r.clusterCIDR, chainMarkMasq)
	}
	if useSVC {
		out.chains = append(out.chains, r.policyChain(sp, svc, all, masq, internal == svc))
	}
	if useSVL {
		out.chains = append(out.chains, r.policyChain(sp, svl, local, masq, internal == svl))
	}
	var seps []proxy.Endpoint
	switch {
	case useSVC:
		seps = all
	case useSVL:
		seps = local
	}
	for _, ep := range seps {
		out.chains = append(out.chains, r.endpointChain(sp, proto, match, ep))
	}
}

// policyChain spreads new connections over eps: the n-th of k remaining
// endpoints is taken with probability 1/(k-n), so each gets 1/k; with
// session affinity a client seen recently goes back to its endpoint
// first.
func (r renderer) policyChain(sp *proxy.ServicePort, name string, eps []proxy.Endpoint, masq string, internal bool) chain {
	c := chain{name: name}
	if internal && masq != "" {
		c.rules = append(c.rules, masq)
	}
	svcName := sp.String()
	if sp.AffinitySeconds > 0 {
		for _, ep := range eps {
			sep := EndpointChain(sp, ep)
			c.rules = append(c.rules, fmt.Sprintf(`-m comment --comment "%s -> %s" -m recent --name %s --rcheck --seconds %d --reap -j %s`,
				svcName, ep, sep, sp.AffinitySeconds, sep))
		}
	}
	for i, ep := range eps {
		sep := EndpointChain(sp, ep)
		if left := len(eps) - i; left > 1 {
			c.rules = append(c.rules, fmt.Sprintf(`-m comment --comment "%s -> %s" -m statistic --mode random --probability %0.10f -j %s`,
				svcName, ep, 1.0/float64(left), sep))
		} else {
			c.rules = append(c.rules, fmt.Sprintf(`-m comment --comment "%s -> %s" -j %s`, svcName, ep, sep))
		}
	}
	return c
}

// endpointChain DNATs to one endpoint, marking hairpin traffic (a pod
// reaching itself through its Service) for masquerade so the reply goes
// back through the node.
func (r renderer) endpointChain(sp *proxy.ServicePort, proto, match string, ep proxy.Endpoint) chain {
	sep := EndpointChain(sp, ep)
	name := sp.String()
	recent := ""
	if sp.AffinitySeconds > 0 {
		recent = fmt.Sprintf(" -m recent --name %s --set", sep)
	}
	return chain{name: sep, rules: []string{
		fmt.Sprintf(`-m comment --comment %s -s %s -j %s`, name, ep.IP, chainMarkMasq),
		fmt.Sprintf(`-m comment --comment %s%s %s -j DNAT --to-destination %s`, name, recent, match, ep),
	}}
}

// nodePortJumps are the last rules of nat KILN-SERVICES: traffic to the
// node's NodePort addresses goes on to KILN-NODEPORTS.
func nodePortJumps(addrs []netip.Addr) []string {
	const comment = `-m comment --comment "kiln service nodeports; NOTE: this must be the last rule in this chain"`
	if len(addrs) == 0 {
		return []string{comment + " -m addrtype --dst-type LOCAL -j " + chainNodePorts}
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = fmt.Sprintf("%s -d %s/32 -j %s", comment, a, chainNodePorts)
	}
	return out
}

// natBase are the rules of the shared nat chains other than the Services'.
func (r renderer) natBase() []rule {
	masq := `-m comment --comment "kiln service traffic requiring SNAT" -j MASQUERADE`
	if r.randomFully {
		masq += " --random-fully"
	}
	return []rule{
		// The mark is cleared before masquerading so that a packet
		// that is re-routed (through a tunnel) is not masqueraded twice.
		{chainPostrouting, "-m mark ! --mark " + masqMark + "/" + masqMark + " -j RETURN"},
		{chainPostrouting, "-j MARK --xor-mark " + masqMark},
		{chainPostrouting, masq},
		{chainMarkMasq, "-j MARK --or-mark " + masqMark},
	}
}

// filterBase are the rules of the shared filter chains other than the
// Services'.
func (r renderer) filterBase() []rule {
	out := []rule{
		// An INVALID packet (one conntrack cannot match, such as an
		// out-of-window retransmit) would bypass the reverse NAT and
		// reach the client with the pod's address; drop it instead.
		{chainForward, "-m conntrack --ctstate INVALID -j DROP"},
		{chainForward, `-m comment --comment "kiln forwarding rules" -m mark --mark ` + masqMark + "/" + masqMark + " -j ACCEPT"},
		{chainForward, `-m comment --comment "kiln forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`},
	}
	if r.clusterCIDR.IsValid() {
		// Pod traffic is forwarded even on hosts whose FORWARD policy
		// is DROP (Docker sets it), as k3s's flannel allows it. A new
		// connection meets the Service rules first: FORWARD jumps to
		// them after this chain, so a pod's connection to a Service
		// without endpoints would be accepted here and leave the node by
		// its default route instead of being refused.
		out = append(out,
			rule{chainForward, `-m conntrack --ctstate NEW -m comment --comment "kiln service portals" -j ` + chainServices},
			rule{chainForward, `-m conntrack --ctstate NEW -m comment --comment "kiln externally-visible service portals" -j ` + chainExternalServices},
			rule{chainForward, fmt.Sprintf(`-m comment --comment "kiln pod traffic" -s %s -j ACCEPT`, r.clusterCIDR)},
			rule{chainForward, fmt.Sprintf(`-m comment --comment "kiln pod traffic" -d %s -j ACCEPT`, r.clusterCIDR)})
	}
	// route_localnet (for NodePorts on 127.0.0.1) would also let in
	// packets to 127.0.0.0/8 from outside; only DNATed ones may pass.
	out = append(out, rule{chainFirewall, `-m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`})
	return out
}

// Shared chains, by table, in the order they are declared.
var (
	natShared    = []string{chainServices, chainNodePorts, chainPostrouting, chainMarkMasq}
	filterShared = []string{chainServices, chainExternalServices, chainForward, chainFirewall}
)

// tables is the restore text being built: one builder per table, with
// chain declarations separate from rules because iptables-restore wants
// them first.
type tables struct {
	natChains, natRules, filterChains, filterRules bytes.Buffer
}

func declare(b *bytes.Buffer, name string) {
	b.WriteString(":")
	b.WriteString(name)
	b.WriteString(" - [0:0]\n")
}

func writeRule(b *bytes.Buffer, op, chain, spec string) {
	b.WriteString(op)
	b.WriteString(" ")
	b.WriteString(chain)
	b.WriteString(" ")
	b.WriteString(spec)
	b.WriteString("\n")
}

// bytes joins the tables into iptables-restore input; an empty table is
// left out.
func (t *tables) bytes() []byte {
	var out bytes.Buffer
	if t.natChains.Len()+t.natRules.Len() > 0 {
		out.WriteString("*nat\n")
		out.Write(t.natChains.Bytes())
		out.Write(t.natRules.Bytes())
		out.WriteString("COMMIT\n")
	}
	if t.filterChains.Len()+t.filterRules.Len() > 0 {
		out.WriteString("*filter\n")
		out.Write(t.filterChains.Bytes())
		out.Write(t.filterRules.Bytes())
		out.WriteString("COMMIT\n")
	}
	return out.Bytes()
}

// fullText is the restore input of a full sync: every shared chain
// flushed and rewritten, every Service's chains rewritten, the stale
// chains (kiln chains that exist but are not wanted) flushed and deleted,
// and the missing jumps inserted at the top of their built-in chains, so
// that chains and the jumps to them appear together.
func fullText(r renderer, nodePortAddrs []netip.Addr, keys []types.NamespacedName, rendered map[types.NamespacedName]*serviceRules, staleNAT, staleFilter []string, missing []jump) []byte {
	var t tables
	for _, c := range natShared {
		declare(&t.natChains, c)
	}
	for _, c := range filterShared {
		declare(&t.filterChains, c)
	}
	for _, ru := range r.natBase() {
		writeRule(&t.natRules, "-A", ru.chain, ru.spec)
	}
	for _, ru := range r.filterBase() {
		writeRule(&t.filterRules, "-A", ru.chain, ru.spec)
	}
	for _, k := range keys {
		s := rendered[k]
		for _, ru := range s.natShared {
			writeRule(&t.natRules, "-A", ru.chain, ru.spec)
		}
		for _, ru := range s.filterShared {
			writeRule(&t.filterRules, "-A", ru.chain, ru.spec)
		}
		for _, c := range s.chains {
			declare(&t.natChains, c.name)
			for _, spec := range c.rules {
				writeRule(&t.natRules, "-A", c.name, spec)
			}
		}
	}
	for _, spec := range nodePortJumps(nodePortAddrs) {
		writeRule(&t.natRules, "-A", chainServices, spec)
	}
	for _, c := range staleNAT {
		declare(&t.natChains, c)
		t.natRules.WriteString("-X " + c + "\n")
	}
	for _, c := range staleFilter {
		declare(&t.filterChains, c)
		t.filterRules.WriteString("-X " + c + "\n")
	}
	for _, j := range missing {
		b := &t.natRules
		if j.table == "filter" {
			b = &t.filterRules
		}
		writeRule(b, "-I", j.chain, "1 "+j.spec())
	}
	return t.bytes()
}

// partialText is the restore input that turns the rules of the Services
// in keys from old into new (nil: none), leaving every other rule alone:
// shared-chain rules that went away are deleted by spec and new ones
// added (nat KILN-SERVICES ones at the top, ahead of the NodePorts jump);
// own chains whose rules changed are flushed and rewritten, and those no
// longer wanted deleted. Unchanged rules are not touched, so a sync that
// changes one endpoint writes only that Service's policy and endpoint
// chains. It returns nil when nothing changes.
func partialText(keys []types.NamespacedName, old, new map[types.NamespacedName]*serviceRules) []byte {
	var t tables
	var delNAT []string
	for _, k := range keys {
		o, n := old[k], new[k]
		if o == nil {
			o = &serviceRules{}
		}
		if n == nil {
			n = &serviceRules{}
		}
		diffShared(&t.natRules, o.natShared, n.natShared, true)
		diffShared(&t.filterRules, o.filterShared, n.filterShared, false)
		oldChains := make(map[string][]string, len(o.chains))
		for _, c := range o.chains {
			oldChains[c.name] = c.rules
		}
		for _, c := range n.chains {
			prev, existed := oldChains[c.name]
			delete(oldChains, c.name)
			if existed && slices.Equal(prev, c.rules) {
				continue
			}
			declare(&t.natChains, c.name)
			for _, spec := range c.rules {
				writeRule(&t.natRules, "-A", c.name, spec)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(oldChains)) {
			declare(&t.natChains, name)
			delNAT = append(delNAT, name)
		}
	}
	// Deletions go last, once no rule jumps to the chains any more.
	for _, name := range delNAT {
		t.natRules.WriteString("-X " + name + "\n")
	}
	return t.bytes()
}

// diffShared writes -D for rules in old but not new and -A (or -I at the
// top, for nat KILN-SERVICES) for rules in new but not old.
func diffShared(b *bytes.Buffer, old, new []rule, nat bool) {
	for _, ru := range old {
		if !slices.Contains(new, ru) {
			writeRule(b, "-D", ru.chain, ru.spec)
		}
	}
	for _, ru := range new {
		if slices.Contains(old, ru) {
			continue
		}
		if nat && ru.chain == chainServices {
			writeRule(b, "-I", ru.chain, "1 "+ru.spec)
		} else {
			writeRule(b, "-A", ru.chain, ru.spec)
		}
	}
}

// sortedKeys returns the Services of rs in a fixed order, so the same
// rule set always gives the same text.
func sortedKeys[V any](m map[types.NamespacedName]V) []types.NamespacedName {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b types.NamespacedName) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return keys
}
