package dns

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// DefaultInterface is the name of the link that holds the cluster DNS
// address on a node, like NodeLocal DNSCache's nodelocaldns.
const DefaultInterface = "kiln-dns"

// EnsureInterface makes the link name hold ip/32 and be up, in the
// network namespace of the calling thread, so the DNS server can listen
// on the cluster DNS address and pods reach it through their default
// route to the node. The link is a dummy; on a kernel without dummy links
// it is a bridge without ports, which holds a local address just the
// same. Calling it again is a no-op; with another address the link holds
// both (a server puts the kubernetes Service's ClusterIP there too). It
// runs the ip tool (iproute2).
func EnsureInterface(name string, ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("dns: interface address %v is not IPv4", ip)
	}
	if _, err := ipTool("link", "show", "dev", name); err != nil {
		if _, err := ipTool("link", "add", name, "type", "dummy"); err != nil {
			if _, err2 := ipTool("link", "add", name, "type", "bridge"); err2 != nil {
				return fmt.Errorf("dns: add link %s: %w", name, errors.Join(err, err2))
			}
		}
	}
	// replace is idempotent where add fails on an existing address.
	if _, err := ipTool("addr", "replace", ip.String()+"/32", "dev", name); err != nil {
		return fmt.Errorf("dns: address %s on %s: %w", ip, name, err)
	}
	if _, err := ipTool("link", "set", name, "up"); err != nil {
		return fmt.Errorf("dns: set %s up: %w", name, err)
	}
	return nil
}

// DeleteInterface removes the link EnsureInterface made; a missing link
// is not an error (kiln server --cleanup-network).
func DeleteInterface(name string) error {
	if _, err := ipTool("link", "show", "dev", name); err != nil {
		return nil
	}
	if _, err := ipTool("link", "del", name); err != nil {
		return fmt.Errorf("dns: delete link %s: %w", name, err)
	}
	return nil
}

func ipTool(args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
