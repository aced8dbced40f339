package iptables

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
)

// Kernel settings the rules need, as kube-proxy sets them.
const (
	// sysctlRouteLocalnet lets DNAT send packets to 127.0.0.1 NodePorts
	// on to pods.
	sysctlRouteLocalnet = "/proc/sys/net/ipv4/conf/all/route_localnet"
	// sysctlIPForward lets the node forward Service traffic to pods.
	sysctlIPForward = "/proc/sys/net/ipv4/ip_forward"
	// sysctlBridgeNFCall makes bridged pod-to-pod traffic pass iptables,
	// so the reply of a pod reached through a Service on the same bridge
	// is un-NATed. It exists only with br_netfilter.
	sysctlBridgeNFCall = "/proc/sys/net/bridge/bridge-nf-call-iptables"
)

// setSysctls sets the kernel settings; it runs in the target namespace.
// A missing br_netfilter is reported by bridge=false, not as an error:
// Services still work, except pod-to-Service-to-pod on one bridge.
func setSysctls() (bridge bool, err error) {
	for _, p := range []string{sysctlRouteLocalnet, sysctlIPForward} {
		if err := writeSysctl(p); err != nil {
			return false, err
		}
	}
	if _, err := os.Stat(sysctlBridgeNFCall); errors.Is(err, fs.ErrNotExist) {
		_ = exec.Command("modprobe", "br_netfilter").Run() // best effort: the module may be built in or absent
	}
	return writeSysctl(sysctlBridgeNFCall) == nil, nil
}

func writeSysctl(path string) error {
	cur, err := os.ReadFile(path)
	if err == nil && len(cur) > 0 && cur[0] == '1' {
		return nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s: %w", path, err)
	}
	return nil
}
