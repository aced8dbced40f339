package routes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
)

// The kernel is reached through iproute2's ip rather than netlink
// directly: no netlink library is in go.mod, and a route change is rare
// (a Node joins, leaves or moves), so an exec per change costs nothing
// that matters. `ip -n NETNS` lets tests keep the routes of a namespace
// without moving threads.

// route is one IPv4 route of the main table, as `ip -j route` prints it.
type route struct {
	Dst      string `json:"dst"`
	Gateway  string `json:"gateway"`
	Protocol string `json:"protocol"`
}

// ours says whether r has kiln's protocol; ip prints a number it has no
// name for in decimal, and the name of one that /etc/iproute2/rt_protos
// gives.
func (r route) ours() bool {
	n, err := strconv.ParseUint(r.Protocol, 0, 8)
	return err == nil && n == Protocol
}

// ip runs the ip command with args in the configured namespace and
// returns its stdout.
func (r *Routes) ip(ctx context.Context, args ...string) ([]byte, error) {
	if r.cfg.Netns != "" {
		args = append([]string{"-n", r.cfg.Netns}, args...)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, r.cfg.IPBinary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// routes lists the IPv4 routes of the main table.
func (r *Routes) routes(ctx context.Context) ([]route, error) {
	out, err := r.ip(ctx, "-4", "-j", "route", "show", "table", "main")
	if err != nil {
		return nil, err
	}
	var rs []route
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(out, &rs); err != nil {
		return nil, fmt.Errorf("parse ip route: %w", err)
	}
	return rs, nil
}

// addrs returns this host's IPv4 addresses and their subnets: a gateway
// must be in one of the subnets to be reached without another router, and
// must not be one of the addresses.
func (r *Routes) addrs(ctx context.Context) (locals []net.IP, nets []*net.IPNet, err error) {
	out, err := r.ip(ctx, "-4", "-j", "addr", "show")
	if err != nil {
		return nil, nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, nil, fmt.Errorf("parse ip addr: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			ip := net.ParseIP(a.Local).To4()
			if ip == nil || a.PrefixLen < 0 || a.PrefixLen > 32 {
				continue
			}
			mask := net.CIDRMask(a.PrefixLen, 32)
			locals = append(locals, ip)
			nets = append(nets, &net.IPNet{IP: ip.Mask(mask), Mask: mask})
		}
	}
	return locals, nets, nil
}

func (r *Routes) replace(ctx context.Context, dst, via string) error {
	_, err := r.ip(ctx, "route", "replace", dst, "via", via, "proto", strconv.Itoa(Protocol))
	return err
}

func (r *Routes) del(ctx context.Context, dst string) error {
	_, err := r.ip(ctx, "route", "del", dst, "proto", strconv.Itoa(Protocol))
	return err
}
