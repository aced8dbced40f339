package iptables

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	goiptables "github.com/coreos/go-iptables/iptables"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/proxy"
)

// Rules writes the proxy's rule set with iptables: the rule text in one
// iptables-restore --noflush transaction per sync, so a sync is atomic.
// The jumps from the built-in chains are checked by reading those chains
// (go-iptables) and the missing ones inserted in that same transaction.
type Rules struct {
	netns string
	log   *slog.Logger
	ipt   *goiptables.IPTables

	mu sync.Mutex
	// applied is what the last successful call wrote, per Service; nil
	// before the first full sync and after a failure.
	applied map[types.NamespacedName]*serviceRules
	// natChains and filterChains are the kiln chains known to exist;
	// nil means unknown, read from iptables-save at the next Sync.
	natChains, filterChains map[string]bool
	sysctlsSet              bool
	// last is the restore input of the last successful call, for the
	// benchmark's baseline.
	last []byte
}

var _ proxy.Rules = (*Rules)(nil)

// jump is a rule in a built-in chain that sends traffic to a kiln chain.
type jump struct {
	table, chain string
	// newOnly matches only packets that open a connection.
	newOnly bool
	comment string // "" for none
	target  string
}

// jumps are the hooks into the built-in chains, as kube-proxy's.
var jumps = []jump{
	{"nat", "PREROUTING", false, "kiln service portals", chainServices},
	{"nat", "OUTPUT", false, "kiln service portals", chainServices},
	{"nat", "POSTROUTING", false, "kiln postrouting rules", chainPostrouting},
	{"filter", "INPUT", true, "kiln externally-visible service portals", chainExternalServices},
	{"filter", "INPUT", false, "", chainFirewall},
	{"filter", "FORWARD", true, "kiln service portals", chainServices},
	{"filter", "FORWARD", true, "kiln externally-visible service portals", chainExternalServices},
	{"filter", "FORWARD", false, "kiln forwarding rules", chainForward},
	{"filter", "OUTPUT", true, "kiln service portals", chainServices},
	{"filter", "OUTPUT", false, "", chainFirewall},
}

// builtins are the built-in chains the jumps are in.
var builtins = [][2]string{{"nat", "PREROUTING"}, {"nat", "OUTPUT"}, {"nat", "POSTROUTING"}, {"filter", "INPUT"}, {"filter", "FORWARD"}, {"filter", "OUTPUT"}}

// spec is the jump's rule spec in iptables-restore syntax.
func (j jump) spec() string {
	var b strings.Builder
	if j.newOnly {
		b.WriteString("-m conntrack --ctstate NEW ")
	}
	if j.comment != "" {
		b.WriteString(`-m comment --comment "` + j.comment + `" `)
	}
	b.WriteString("-j " + j.target)
	return b.String()
}

// in reports whether lines (iptables -S or iptables-save output of the
// jump's table) hold the jump. It matches on what makes the jump this
// one, not on the exact spelling, which iptables normalises.
func (j jump) in(lines []string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, "-A "+j.chain+" ") && strings.HasSuffix(l, " -j "+j.target) &&
			(j.comment == "" || strings.Contains(l, j.comment)) && j.newOnly == strings.Contains(l, "--ctstate NEW") {
			return true
		}
	}
	return false
}

// New finds the iptables tools. It changes nothing on the node.
func New(cfg Config) (*Rules, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, tool := range []string{"iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("iptables: %w", err)
		}
	}
	ipt, err := goiptables.New(goiptables.Timeout(5))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &Rules{netns: cfg.NetNS, log: cfg.Logger.With("component", "proxy-iptables"), ipt: ipt}, nil
}

// Sync rewrites every kiln rule: shared and per-Service chains in one
// restore, chains of Services not in rs deleted and missing jumps
// inserted in the same transaction. The first call (and the first after a
// failure) also sets the kernel settings the rules need and reads the
// tables with iptables-save, to find kiln chains left from before a
// restart; later calls know the chains and only list the built-in chains
// to find jumps someone removed.
func (r *Rules) Sync(ctx context.Context, rs *proxy.RuleSet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ren := renderer{clusterCIDR: rs.ClusterCIDR, randomFully: r.ipt.HasRandomFully()}
	keys := sortedKeys(rs.Services)
	rendered := make(map[types.NamespacedName]*serviceRules, len(keys))
	wantNAT := make(map[string]bool, 4+len(keys)*4)
	for _, c := range natShared {
		wantNAT[c] = true
	}
	for _, k := range keys {
		s := ren.service(rs.Services[k])
		rendered[k] = s
		for _, c := range s.chains {
			wantNAT[c.name] = true
		}
	}
	wantFilter := make(map[string]bool, len(filterShared))
	for _, c := range filterShared {
		wantFilter[c] = true
	}

	r.applied = nil // until this call succeeds
	var text []byte
	err := inNetns(r.netns, func() error {
		if !r.sysctlsSet {
			bridge, err := setSysctls()
			if err != nil {
				return err
			}
			if !bridge {
				r.log.Warn("bridge-nf-call-iptables unavailable (no br_netfilter): a pod reaching a Service backed by a pod on the same bridge may fail")
			}
			r.sysctlsSet = true
		}
		var hooks map[string][]string // built-in chain rules by table
		if r.natChains == nil || r.filterChains == nil {
			hooks = map[string][]string{}
			nat, natHooks, err := r.readTable(ctx, "nat")
			if err != nil {
				return err
			}
			filter, filterHooks, err := r.readTable(ctx, "filter")
			if err != nil {
				return err
			}
			r.natChains, r.filterChains = nat, filter
			hooks["nat"], hooks["filter"] = natHooks, filterHooks
		} else {
			var err error
			if hooks, err = r.listBuiltins(); err != nil {
				return err
			}
		}
		var missing []jump
		for _, j := range jumps {
			if !j.in(hooks[j.table]) {
				missing = append(missing, j)
			}
		}
		text = fullText(ren, rs.NodePortAddresses, keys, rendered, stale(r.natChains, wantNAT), stale(r.filterChains, wantFilter), missing)
		if err := r.restore(ctx, text); err != nil {
			return err
		}
		r.natChains, r.filterChains = wantNAT, wantFilter
		return nil
	})
	if err != nil {
		r.natChains, r.filterChains = nil, nil
		return err
	}
	r.applied, r.last = rendered, text
	return nil
}

// SyncServices rewrites only the rules of the changed Services, leaving
// the rest untouched, in one restore transaction.
func (r *Rules) SyncServices(ctx context.Context, rs *proxy.RuleSet, changed []types.NamespacedName) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.applied == nil {
		return ErrNotSynced
	}
	ren := renderer{clusterCIDR: rs.ClusterCIDR, randomFully: r.ipt.HasRandomFully()}
	next := make(map[types.NamespacedName]*serviceRules, len(changed))
	for _, k := range changed {
		if ports := rs.Services[k]; len(ports) > 0 {
			next[k] = ren.service(ports)
		}
	}
	text := partialText(changed, r.applied, next)
	if len(text) > 0 {
		if err := inNetns(r.netns, func() error { return r.restore(ctx, text) }); err != nil {
			r.applied, r.natChains, r.filterChains = nil, nil, nil
			return err
		}
	}
	for _, k := range changed {
		for _, c := range r.applied[k].ownChains() {
			delete(r.natChains, c)
		}
		if s := next[k]; s != nil {
			r.applied[k] = s
			for _, c := range s.ownChains() {
				r.natChains[c] = true
			}
		} else {
			delete(r.applied, k)
		}
	}
	r.last = text
	return nil
}

// Cleanup deletes every jump to a chain of the proxy from the built-in
// chains and then every such chain, in both tables. Other kiln chains
// (the container runtime's masquerade chain) are their owners' to remove.
func (r *Rules) Cleanup(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied, r.natChains, r.filterChains = nil, nil, nil
	return inNetns(r.netns, func() error {
		for _, tc := range builtins {
			if err := r.deleteJumps(tc[0], tc[1]); err != nil {
				return err
			}
		}
		var t tables
		for _, table := range []string{"nat", "filter"} {
			chains, _, err := r.readTable(ctx, table)
			if err != nil {
				return err
			}
			decl, rules := &t.natChains, &t.natRules
			if table == "filter" {
				decl, rules = &t.filterChains, &t.filterRules
			}
			for _, c := range slices.Sorted(maps.Keys(chains)) {
				declare(decl, c)
				rules.WriteString("-X " + c + "\n")
			}
		}
		return r.restore(ctx, t.bytes())
	})
}

// listBuiltins lists the rules of the built-in chains the jumps are in,
// by table.
func (r *Rules) listBuiltins() (map[string][]string, error) {
	out := map[string][]string{}
	for _, tc := range builtins {
		lines, err := r.ipt.List(tc[0], tc[1])
		if err != nil {
			return nil, fmt.Errorf("list %s %s: %w", tc[0], tc[1], err)
		}
		out[tc[0]] = append(out[tc[0]], lines...)
	}
	return out, nil
}

// deleteJumps deletes every rule of a built-in chain that jumps to a
// chain of the proxy, whatever its other matches (an older kiln may have
// written them differently), by rule number from the last.
func (r *Rules) deleteJumps(table, chain string) error {
	lines, err := r.ipt.List(table, chain)
	if err != nil {
		return fmt.Errorf("list %s %s: %w", table, chain, err)
	}
	var nums []int
	n := 0
	for _, l := range lines {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		n++
		if _, target, ok := strings.Cut(l, " -j "); ok && owned(strings.TrimSpace(target)) {
			nums = append(nums, n)
		}
	}
	for _, id := range slices.Backward(nums) {
		if err := r.ipt.DeleteById(table, chain, id); err != nil {
			return fmt.Errorf("delete jump %s %s #%d: %w", table, chain, id, err)
		}
	}
	return nil
}

// readTable reads a table with iptables-save: the proxy's chains in it,
// and the rules of its built-in chains (where the jumps are).
func (r *Rules) readTable(ctx context.Context, table string) (chains map[string]bool, hooks []string, err error) {
	var out, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-save", "-t", table)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("iptables-save -t %s: %w: %s", table, err, strings.TrimSpace(stderr.String()))
	}
	chains = map[string]bool{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, ":"+chainPrefix):
			if name, _, _ := strings.Cut(line[1:], " "); owned(name) {
				chains[name] = true
			}
		case strings.HasPrefix(line, "-A ") && !strings.HasPrefix(line, "-A "+chainPrefix):
			hooks = append(hooks, line)
		}
	}
	return chains, hooks, sc.Err()
}

// errLine finds the line iptables-restore names in its error message.
var errLine = regexp.MustCompile(`line:? (\d+)`)

// restore feeds text to iptables-restore --noflush: one transaction,
// all or nothing.
func (r *Rules) restore(ctx context.Context, text []byte) error {
	if len(text) == 0 {
		return nil
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "5", "--noflush")
	cmd.Stdin, cmd.Stderr = bytes.NewReader(text), &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if m := errLine.FindStringSubmatch(msg); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > 0 {
				if lines := bytes.Split(text, []byte("\n")); n <= len(lines) {
					msg += fmt.Sprintf(" (line %d: %s)", n, lines[n-1])
				}
			}
		}
		return fmt.Errorf("iptables-restore: %w: %s", err, msg)
	}
	return nil
}

// stale are the chains that exist but are not wanted, sorted.
func stale(exist, want map[string]bool) []string {
	var out []string
	for c := range exist {
		if !want[c] {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}
