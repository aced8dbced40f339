package containerd

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Pods reach beyond the cluster with the node's address: one nat chain per
// bridge, jumped to from POSTROUTING, masquerades what this node's pods
// send outside the cluster CIDR (and is not multicast). Pods on other
// nodes, reached over host-gw routes, see the sender's own pod IP, as
// Kubernetes' network model requires (and NetworkPolicy would need). It replaces the bridge plugin's ipMasq, which
// makes a chain and several rules per pod (see network.go).

// masqChain is the nat chain of this runtime's bridge.
func (r *Runtime) masqChain() string { return "KILN-MASQ-" + strings.ToUpper(r.cfg.BridgeName) }

func (r *Runtime) masqJump() []string {
	return []string{"-m", "comment", "--comment", "kiln: masquerade pods of " + r.cfg.BridgeName, "-j", r.masqChain()}
}

// ensureMasquerade (re)writes the chain for cidr and makes sure
// POSTROUTING jumps to it; idempotent.
func (r *Runtime) ensureMasquerade(cidr string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	chain := r.masqChain()
	if err := ipt.ClearChain("nat", chain); err != nil { // creates it if missing
		return fmt.Errorf("iptables: %w", err)
	}
	for _, rule := range [][]string{
		{"!", "-s", cidr, "-j", "RETURN"},
		// The pod CIDR too, in case a misconfigured one lies outside the
		// cluster CIDR: a node's own pods never see each other masqueraded.
		{"-d", cidr, "-j", "RETURN"},
		{"-d", r.cfg.ClusterCIDR, "-j", "RETURN"},
		{"-d", "224.0.0.0/4", "-j", "RETURN"},
		{"-j", "MASQUERADE"},
	} {
		if err := ipt.Append("nat", chain, rule...); err != nil {
			return fmt.Errorf("iptables: %w", err)
		}
	}
	if err := ipt.AppendUnique("nat", "POSTROUTING", r.masqJump()...); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}

// removeMasquerade deletes the jump and the chain (tests, and a node that
// is taken out of service).
func (r *Runtime) removeMasquerade() error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	// Without the chain there is no jump to it either (iptables refuses
	// one), and checking for the jump would fail.
	ok, err := ipt.ChainExists("nat", r.masqChain())
	if err != nil || !ok {
		return err
	}
	if err := ipt.DeleteIfExists("nat", "POSTROUTING", r.masqJump()...); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if err := ipt.ClearAndDeleteChain("nat", r.masqChain()); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	return nil
}

// CleanupNetwork removes what a runtime with bridge leaves on the host
// when its node is taken out of service: the masquerade chain and its
// jump, and the bridge itself (`kiln server --cleanup-network`). Pods'
// network namespaces go with their sandboxes, not here. An empty bridge
// means DefaultBridgeName.
func CleanupNetwork(bridge string) error {
	if bridge == "" {
		bridge = DefaultBridgeName
	}
	r := &Runtime{cfg: Config{BridgeName: bridge}}
	err := r.removeMasquerade()
	// net.InterfaceByName asks the kernel of this network namespace;
	// /sys may be another's (a netns entered without remounting it).
	if _, ierr := net.InterfaceByName(bridge); ierr == nil {
		if out, derr := exec.Command("ip", "link", "del", bridge).CombinedOutput(); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete bridge %s: %v: %s", bridge, derr, bytes.TrimSpace(out)))
		}
	}
	return err
}
