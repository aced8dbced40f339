package iptables

import "log/slog"

// Config configures the iptables rules writer. The zero value writes in
// the process's own network namespace with the iptables tools on PATH.
type Config struct {
	// NetNS is the path of a network namespace to write the rules in
	// (/run/netns/NAME, /proc/PID/ns/net); empty means the process's own.
	// Tests use it to work in a namespace of their own.
	NetNS string
	// Logger receives warnings about optional node settings that could
	// not be made (br_netfilter missing); nil means slog.Default().
	Logger *slog.Logger
}
