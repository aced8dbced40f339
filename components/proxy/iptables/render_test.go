package iptables

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/proxy"
)

// restoreText is iptables-restore input taken apart, to assert on what
// the rules mean rather than on their exact spelling.
type restoreText struct {
	// rules are "-A" lines by table and chain, in order; "-I" lines are
	// kept with their position stripped, under inserted.
	rules, inserted, deletedRules map[string]map[string][]string
	// declared and deleted are chains by table.
	declared, deleted map[string][]string
}

func parseRestore(t *testing.T, text []byte) restoreText {
	t.Helper()
	rt := restoreText{
		rules: map[string]map[string][]string{}, inserted: map[string]map[string][]string{}, deletedRules: map[string]map[string][]string{},
		declared: map[string][]string{}, deleted: map[string][]string{},
	}
	add := func(m map[string]map[string][]string, table, chain, spec string) {
		if m[table] == nil {
			m[table] = map[string][]string{}
		}
		m[table][chain] = append(m[table][chain], spec)
	}
	table := ""
	for line := range strings.Lines(string(text)) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case line == "COMMIT":
			table = ""
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			rt.declared[table] = append(rt.declared[table], name)
		case strings.HasPrefix(line, "-X "):
			rt.deleted[table] = append(rt.deleted[table], line[3:])
		case strings.HasPrefix(line, "-A "), strings.HasPrefix(line, "-D "), strings.HasPrefix(line, "-I "):
			op := line[:2]
			chain, spec, _ := strings.Cut(line[3:], " ")
			switch op {
			case "-A":
				add(rt.rules, table, chain, spec)
			case "-D":
				add(rt.deletedRules, table, chain, spec)
			case "-I":
				_, spec, _ = strings.Cut(spec, " ") // the position
				add(rt.inserted, table, chain, spec)
			}
		default:
			t.Fatalf("unexpected restore line %q", line)
		}
		if table == "" && line != "COMMIT" {
			t.Fatalf("line outside a table: %q", line)
		}
	}
	return rt
}

// jumpTarget is the chain a rule jumps to.
func jumpTarget(spec string) string {
	_, target, _ := strings.Cut(" "+spec, " -j ")
	target, _, _ = strings.Cut(target, " ")
	return target
}

var probability = regexp.MustCompile(`--probability (\S+)`)

func svcKey(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "shop", Name: name}
}

func eps(local ...bool) []proxy.Endpoint {
	var out []proxy.Endpoint
	for i, l := range local {
		out = append(out, proxy.Endpoint{IP: netip.AddrFrom4([4]byte{10, 42, 1, byte(10 + i)}), Port: 8080, Local: l})
	}
	return out
}

func port(name string, mod func(*proxy.ServicePort)) proxy.ServicePort {
	sp := proxy.ServicePort{
		Service: svcKey(name), Name: "http", Protocol: corev1.ProtocolTCP,
		ClusterIP: netip.MustParseAddr("10.43.0.20"), Port: 80,
		Endpoints: eps(false, false, false),
	}
	if mod != nil {
		mod(&sp)
	}
	return sp
}

var testRenderer = renderer{clusterCIDR: netip.MustParsePrefix("10.42.0.0/16"), randomFully: true}

func render(t *testing.T, r renderer, ports ...proxy.ServicePort) restoreText {
	t.Helper()
	rs := map[types.NamespacedName]*serviceRules{}
	for _, sp := range ports {
		rs[sp.Service] = r.service([]proxy.ServicePort{sp})
	}
	return parseRestore(t, fullText(r, nil, sortedKeys(rs), rs, nil, nil, nil))
}

func TestRender_spreadsOverEndpoints(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprintf("%d endpoints", n), func(t *testing.T) {
			sp := port("web", func(sp *proxy.ServicePort) { sp.Endpoints = eps(make([]bool, n)...) })
			rt := render(t, testRenderer, sp)
			nat := rt.rules["nat"]
			svc := ServiceChain(&sp)
			dispatch := nat[chainServices]
			if len(dispatch) != 2 || jumpTarget(dispatch[0]) != svc || !strings.Contains(dispatch[0], "-d 10.43.0.20 --dport 80") || !strings.Contains(dispatch[0], "-p tcp") {
				t.Fatalf("KILN-SERVICES = %q, want the ClusterIP jump to %s then the NodePorts jump", dispatch, svc)
			}
			if jumpTarget(dispatch[1]) != chainNodePorts {
				t.Errorf("last KILN-SERVICES rule jumps to %s, want %s", jumpTarget(dispatch[1]), chainNodePorts)
			}
			rules := nat[svc]
			// The first rule marks traffic from outside the cluster CIDR.
			if !strings.Contains(rules[0], "! -s 10.42.0.0/16") || jumpTarget(rules[0]) != chainMarkMasq {
				t.Errorf("first %s rule %q, want off-cluster masquerade", svc, rules[0])
			}
			spread := rules[1:]
			if len(spread) != n {
				t.Fatalf("%d spread rules, want %d: %q", len(spread), n, spread)
			}
			// Taking endpoint i with probability 1/(n-i) of what is left
			// gives each endpoint 1/n.
			left := 1.0
			seen := map[string]bool{}
			for i, r := range spread {
				p := 1.0
				if m := probability.FindStringSubmatch(r); m != nil {
					fmt.Sscanf(m[1], "%g", &p)
				} else if i != n-1 {
					t.Errorf("rule %d %q has no probability; only the last may be unconditional", i, r)
				}
				if got, want := left*p, 1.0/float64(n); got < want-1e-6 || got > want+1e-6 {
					t.Errorf("endpoint %d gets %.6f of new connections, want %.6f", i, got, want)
				}
				left *= 1 - p
				sep := jumpTarget(r)
				if seen[sep] {
					t.Errorf("endpoint chain %s used twice", sep)
				}
				seen[sep] = true
				ep := sp.Endpoints[i]
				if sep != EndpointChain(&sp, ep) {
					t.Errorf("rule %d jumps to %s, want the chain of %s", i, sep, ep)
				}
				sepRules := nat[sep]
				if len(sepRules) != 2 || !strings.Contains(sepRules[0], "-s "+ep.IP.String()) || jumpTarget(sepRules[0]) != chainMarkMasq {
					t.Errorf("%s rules %q: want hairpin masquerade first", sep, sepRules)
				}
				if !strings.HasSuffix(sepRules[1], "-j DNAT --to-destination "+ep.String()) || !strings.Contains(sepRules[1], "-p tcp") {
					t.Errorf("%s rule %q, want DNAT to %s", sep, sepRules[1], ep)
				}
			}
			if left > 1e-9 {
				t.Errorf("%.6f of connections fall through the spread", left)
			}
		})
	}
}

func TestRender_noClusterCIDRNoOffClusterMasquerade(t *testing.T) {
	sp := port("web", nil)
	rt := render(t, renderer{}, sp)
	for _, r := range rt.rules["nat"][ServiceChain(&sp)] {
		if jumpTarget(r) == chainMarkMasq {
			t.Errorf("masquerade rule %q without a cluster CIDR", r)
		}
	}
	if slices.ContainsFunc(rt.rules["filter"][chainForward], func(r string) bool { return strings.Contains(r, "pod traffic") }) {
		t.Error("pod traffic rules without a cluster CIDR")
	}
}

func TestRender_sessionAffinity(t *testing.T) {
	sp := port("sticky", func(sp *proxy.ServicePort) { sp.AffinitySeconds = 600 })
	rt := render(t, testRenderer, sp)
	nat := rt.rules["nat"]
	rules := nat[ServiceChain(&sp)][1:]
	// Recently seen clients go back to their endpoint before any new
	// choice is made.
	for i, ep := range sp.Endpoints {
		sep := EndpointChain(&sp, ep)
		want := fmt.Sprintf("-m recent --name %s --rcheck --seconds 600 --reap -j %s", sep, sep)
		if !strings.HasSuffix(rules[i], want) {
			t.Errorf("affinity rule %d = %q, want suffix %q", i, rules[i], want)
		}
		if dnat := nat[sep][1]; !strings.Contains(dnat, "-m recent --name "+sep+" --set") {
			t.Errorf("%s DNAT rule %q does not record the client", sep, dnat)
		}
	}
	if len(rules) != 2*len(sp.Endpoints) {
		t.Errorf("%d rules, want %d affinity then %d spread rules", len(rules), len(sp.Endpoints), len(sp.Endpoints))
	}
}

func TestRender_noEndpointsRejects(t *testing.T) {
	sp := port("empty", func(sp *proxy.ServicePort) { sp.Endpoints = nil; sp.NodePort = 30080 })
	rt := render(t, testRenderer, sp)
	if n := len(rt.rules["nat"][chainServices]); n != 1 {
		t.Errorf("nat KILN-SERVICES has %d rules, want only the NodePorts jump", n)
	}
	if len(rt.rules["nat"][chainNodePorts]) != 0 {
		t.Errorf("nat KILN-NODEPORTS = %q, want nothing", rt.rules["nat"][chainNodePorts])
	}
	for _, c := range rt.declared["nat"] {
		if strings.HasPrefix(c, prefixSVC) || strings.HasPrefix(c, prefixSEP) || strings.HasPrefix(c, prefixEXT) {
			t.Errorf("chain %s declared for a Service without endpoints", c)
		}
	}
	clusterIP := rt.rules["filter"][chainServices]
	if len(clusterIP) != 1 || !strings.Contains(clusterIP[0], "-d 10.43.0.20 --dport 80") || jumpTarget(clusterIP[0]) != "REJECT" {
		t.Errorf("filter KILN-SERVICES = %q, want one REJECT of 10.43.0.20:80", clusterIP)
	}
	nodePort := rt.rules["filter"][chainExternalServices]
	if len(nodePort) != 1 || !strings.Contains(nodePort[0], "--dport 30080") || !strings.Contains(nodePort[0], "--dst-type LOCAL") || jumpTarget(nodePort[0]) != "REJECT" {
		t.Errorf("filter KILN-EXTERNAL-SERVICES = %q, want one REJECT of local :30080", nodePort)
	}
}

func TestRender_namedPortIsResolved(t *testing.T) {
	// The proxy resolves a named targetPort from the EndpointSlice; the
	// rules DNAT to whatever port each endpoint carries.
	sp := port("named", func(sp *proxy.ServicePort) {
		sp.Endpoints = []proxy.Endpoint{
			{IP: netip.MustParseAddr("10.42.1.10"), Port: 8080},
			{IP: netip.MustParseAddr("10.42.1.11"), Port: 9090},
		}
	})
	rt := render(t, testRenderer, sp)
	for _, ep := range sp.Endpoints {
		dnat := rt.rules["nat"][EndpointChain(&sp, ep)][1]
		if !strings.HasSuffix(dnat, "--to-destination "+ep.String()) {
			t.Errorf("DNAT %q, want to %s", dnat, ep)
		}
	}
}

func TestRender_nodePort(t *testing.T) {
	sp := port("np", func(sp *proxy.ServicePort) { sp.NodePort = 30080 })
	rt := render(t, testRenderer, sp)
	nat := rt.rules["nat"]
	np := nat[chainNodePorts]
	ext := externalChain(&sp)
	if len(np) != 1 || !strings.Contains(np[0], "--dport 30080") || jumpTarget(np[0]) != ext {
		t.Fatalf("KILN-NODEPORTS = %q, want :30080 -> %s", np, ext)
	}
	// Cluster policy: masquerade (the reply must come back through this
	// node), then all endpoints.
	if r := nat[ext]; len(r) != 2 || jumpTarget(r[0]) != chainMarkMasq || jumpTarget(r[1]) != ServiceChain(&sp) {
		t.Errorf("%s = %q, want masquerade then %s", ext, r, ServiceChain(&sp))
	}
}

func TestRender_nodePortsOnNodeAddresses(t *testing.T) {
	sp := port("np", func(sp *proxy.ServicePort) { sp.NodePort = 30080 })
	rs := map[types.NamespacedName]*serviceRules{sp.Service: testRenderer.service([]proxy.ServicePort{sp})}
	addrs := []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("127.0.0.1")}
	rt := parseRestore(t, fullText(testRenderer, addrs, sortedKeys(rs), rs, nil, nil, nil))
	dispatch := rt.rules["nat"][chainServices]
	tail := dispatch[len(dispatch)-2:]
	for i, a := range addrs {
		if !strings.Contains(tail[i], "-d "+a.String()+"/32") || jumpTarget(tail[i]) != chainNodePorts {
			t.Errorf("NodePorts jump %d = %q, want -d %s", i, tail[i], a)
		}
	}
}

func TestRender_externalTrafficPolicyLocal(t *testing.T) {
	sp := port("local", func(sp *proxy.ServicePort) {
		sp.NodePort = 30081
		sp.ExternalLocal = true
		sp.Endpoints = eps(true, false, false)
	})
	rt := render(t, testRenderer, sp)
	nat := rt.rules["nat"]
	ext, svc, svl := externalChain(&sp), ServiceChain(&sp), localChain(&sp)
	r := nat[ext]
	if len(r) != 4 {
		t.Fatalf("%s = %q, want 4 rules", ext, r)
	}
	if !strings.Contains(r[0], "-s 10.42.0.0/16") || jumpTarget(r[0]) != svc {
		t.Errorf("rule 0 %q: pods should go to all endpoints", r[0])
	}
	if !strings.Contains(r[1], "--src-type LOCAL") || jumpTarget(r[1]) != chainMarkMasq || !strings.Contains(r[2], "--src-type LOCAL") || jumpTarget(r[2]) != svc {
		t.Errorf("rules 1-2 %q: the node's own traffic should be masqueraded and go to all endpoints", r[1:3])
	}
	if jumpTarget(r[3]) != svl || strings.Contains(r[3], "MARK") {
		t.Errorf("rule 3 %q: outside traffic should go to the local endpoints, unmasqueraded", r[3])
	}
	local := nat[svl]
	if len(local) != 1 || jumpTarget(local[0]) != EndpointChain(&sp, sp.Endpoints[0]) {
		t.Errorf("%s = %q, want only the local endpoint %s", svl, local, sp.Endpoints[0])
	}

	t.Run("no local endpoints", func(t *testing.T) {
		sp.Endpoints = eps(false, false)
		rt := render(t, testRenderer, sp)
		if slices.ContainsFunc(rt.rules["nat"][ext], func(r string) bool { return jumpTarget(r) == svl }) {
			t.Errorf("%s jumps to an empty local chain", ext)
		}
		rej := rt.rules["filter"][chainExternalServices]
		if len(rej) != 1 || !strings.Contains(rej[0], "no local endpoints") || !strings.Contains(rej[0], "--dport 30081") || jumpTarget(rej[0]) != "REJECT" {
			t.Errorf("KILN-EXTERNAL-SERVICES = %q, want a REJECT of :30081", rej)
		}
		if len(rt.rules["filter"][chainServices]) != 0 {
			t.Error("the ClusterIP is rejected though it has endpoints")
		}
	})
}

func TestRender_internalTrafficPolicyLocal(t *testing.T) {
	sp := port("itp", func(sp *proxy.ServicePort) { sp.InternalLocal = true; sp.Endpoints = eps(false, true) })
	rt := render(t, testRenderer, sp)
	nat := rt.rules["nat"]
	if d := nat[chainServices][0]; jumpTarget(d) != localChain(&sp) {
		t.Errorf("ClusterIP dispatch %q, want the local chain", d)
	}
	if r := nat[localChain(&sp)]; len(r) != 2 || jumpTarget(r[1]) != EndpointChain(&sp, sp.Endpoints[1]) {
		t.Errorf("local chain %q, want masquerade then the one local endpoint", r)
	}
	if _, ok := nat[ServiceChain(&sp)]; ok {
		t.Error("cluster-wide chain written though nothing uses it")
	}
}

func TestRender_udp(t *testing.T) {
	sp := port("dns", func(sp *proxy.ServicePort) { sp.Protocol = corev1.ProtocolUDP; sp.Port = 53 })
	rt := render(t, testRenderer, sp)
	if d := rt.rules["nat"][chainServices][0]; !strings.Contains(d, "-m udp -p udp -d 10.43.0.20 --dport 53") {
		t.Errorf("dispatch %q, want udp", d)
	}
}

func TestFullText_staleChainsAndJumps(t *testing.T) {
	rt := parseRestore(t, fullText(testRenderer, nil, nil, nil, []string{"KILN-SVC-OLD"}, []string{"KILN-OLD"}, jumps))
	if !slices.Contains(rt.declared["nat"], "KILN-SVC-OLD") || !slices.Equal(rt.deleted["nat"], []string{"KILN-SVC-OLD"}) {
		t.Errorf("nat: declared %q deleted %q, want KILN-SVC-OLD flushed and deleted", rt.declared["nat"], rt.deleted["nat"])
	}
	if !slices.Equal(rt.deleted["filter"], []string{"KILN-OLD"}) {
		t.Errorf("filter deleted %q", rt.deleted["filter"])
	}
	for _, c := range natShared {
		if !slices.Contains(rt.declared["nat"], c) {
			t.Errorf("shared chain %s not declared", c)
		}
	}
	// Missing jumps are inserted at the top of their built-in chains.
	for _, j := range jumps {
		if !slices.Contains(rt.inserted[j.table][j.chain], j.spec()) {
			t.Errorf("jump %s %s -> %s not inserted: %q", j.table, j.chain, j.target, rt.inserted[j.table][j.chain])
		}
	}
}

func TestPartialText(t *testing.T) {
	before := port("web", nil)
	other := port("other", func(sp *proxy.ServicePort) { sp.ClusterIP = netip.MustParseAddr("10.43.0.21") })
	applied := map[types.NamespacedName]*serviceRules{
		before.Service: testRenderer.service([]proxy.ServicePort{before}),
		other.Service:  testRenderer.service([]proxy.ServicePort{other}),
	}
	key := []types.NamespacedName{before.Service}

	t.Run("endpoint replaced", func(t *testing.T) {
		after := before
		after.Endpoints = slices.Clone(before.Endpoints)
		after.Endpoints[2].IP = netip.MustParseAddr("10.42.1.99")
		next := map[types.NamespacedName]*serviceRules{after.Service: testRenderer.service([]proxy.ServicePort{after})}
		rt := parseRestore(t, partialText(key, applied, next))
		gone, added := EndpointChain(&before, before.Endpoints[2]), EndpointChain(&after, after.Endpoints[2])
		if want := []string{ServiceChain(&after), added, gone}; !sameSet(rt.declared["nat"], want) {
			t.Errorf("declared %q, want only %q", rt.declared["nat"], want)
		}
		if !slices.Equal(rt.deleted["nat"], []string{gone}) {
			t.Errorf("deleted %q, want %s", rt.deleted["nat"], gone)
		}
		if len(rt.inserted)+len(rt.deletedRules)+len(rt.rules["filter"]) != 0 || rt.rules["nat"][chainServices] != nil {
			t.Error("shared chains touched though the dispatch did not change")
		}
	})
	t.Run("service deleted", func(t *testing.T) {
		rt := parseRestore(t, partialText(key, applied, nil))
		if d := rt.deletedRules["nat"][chainServices]; len(d) != 1 || jumpTarget(d[0]) != ServiceChain(&before) {
			t.Errorf("-D KILN-SERVICES %q, want the dispatch of %s", d, before.String())
		}
		if want := applied[before.Service].ownChains(); !sameSet(rt.deleted["nat"], want) {
			t.Errorf("deleted %q, want %q", rt.deleted["nat"], want)
		}
		if slices.ContainsFunc(rt.deleted["nat"], func(c string) bool { return slices.Contains(applied[other.Service].ownChains(), c) }) {
			t.Error("deleted a chain of another Service")
		}
	})
	t.Run("service added", func(t *testing.T) {
		added := port("new", func(sp *proxy.ServicePort) { sp.ClusterIP = netip.MustParseAddr("10.43.0.22") })
		next := map[types.NamespacedName]*serviceRules{added.Service: testRenderer.service([]proxy.ServicePort{added})}
		rt := parseRestore(t, partialText([]types.NamespacedName{added.Service}, applied, next))
		// Inserted at the top, so the NodePorts jump stays last.
		if ins := rt.inserted["nat"][chainServices]; len(ins) != 1 || jumpTarget(ins[0]) != ServiceChain(&added) {
			t.Errorf("-I KILN-SERVICES %q", ins)
		}
		if len(rt.deleted["nat"]) != 0 {
			t.Errorf("deleted %q", rt.deleted["nat"])
		}
	})
	t.Run("no change", func(t *testing.T) {
		if text := partialText(key, applied, applied); len(text) != 0 {
			t.Errorf("text %q, want none", text)
		}
	})
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
