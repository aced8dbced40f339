package fakerules

import (
	"context"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/proxy"
)

// Kind names the Rules method of a Call.
type Kind string

// The methods of proxy.Rules.
const (
	KindSync         Kind = "Sync"
	KindSyncServices Kind = "SyncServices"
	KindCleanup      Kind = "Cleanup"
)

// Call is one recorded call.
type Call struct {
	Kind Kind
	// RuleSet is a deep copy of the argument (nil for Cleanup).
	RuleSet *proxy.RuleSet
	// Changed is SyncServices' changed argument.
	Changed []types.NamespacedName
	// Err is what the call returned.
	Err error
}

// Fake is a proxy.Rules that records calls. It is safe for concurrent use.
type Fake struct {
	mu    sync.Mutex
	calls []Call
	fail  map[Kind][]error
	// current is the rule set as of the last successful call.
	current *proxy.RuleSet
}

var _ proxy.Rules = (*Fake)(nil)

// New returns an empty Fake.
func New() *Fake { return &Fake{fail: map[Kind][]error{}} }

// FailNext makes the next call of kind return err; calls queue up.
func (f *Fake) FailNext(kind Kind, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[kind] = append(f.fail[kind], err)
}

// Sync records a full sync.
func (f *Fake) Sync(_ context.Context, rs *proxy.RuleSet) error {
	return f.record(Call{Kind: KindSync, RuleSet: clone(rs)})
}

// SyncServices records a partial sync.
func (f *Fake) SyncServices(_ context.Context, rs *proxy.RuleSet, changed []types.NamespacedName) error {
	return f.record(Call{Kind: KindSyncServices, RuleSet: clone(rs), Changed: slices.Clone(changed)})
}

// Cleanup records a cleanup, which empties the current rule set.
func (f *Fake) Cleanup(context.Context) error {
	return f.record(Call{Kind: KindCleanup})
}

func (f *Fake) record(c Call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if errs := f.fail[c.Kind]; len(errs) > 0 {
		c.Err, f.fail[c.Kind] = errs[0], errs[1:]
	}
	f.calls = append(f.calls, c)
	if c.Err == nil {
		f.current = c.RuleSet
	}
	return c.Err
}

// Calls returns the calls so far, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// Current returns the rule set of the last successful call; nil before
// the first one and after Cleanup.
func (f *Fake) Current() *proxy.RuleSet {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

// Service returns the ports of one Service in the current rule set; nil
// when it has no rules.
func (f *Fake) Service(key types.NamespacedName) []proxy.ServicePort {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current == nil {
		return nil
	}
	return f.current.Services[key]
}

// clone deep-copies rs, as the proxy reuses its maps after the call.
func clone(rs *proxy.RuleSet) *proxy.RuleSet {
	out := &proxy.RuleSet{
		ClusterCIDR:       rs.ClusterCIDR,
		NodePortAddresses: slices.Clone(rs.NodePortAddresses),
		Services:          make(map[types.NamespacedName][]proxy.ServicePort, len(rs.Services)),
	}
	for k, ports := range rs.Services {
		cp := slices.Clone(ports)
		for i := range cp {
			cp[i].Endpoints = slices.Clone(cp[i].Endpoints)
		}
		out.Services[k] = cp
	}
	return out
}
