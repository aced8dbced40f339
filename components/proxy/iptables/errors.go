package iptables

import "errors"

// ErrNotSynced is returned by SyncServices before the first successful
// Sync, and after a failed call: the node's rules are unknown, so only a
// full Sync can continue.
var ErrNotSynced = errors.New("iptables: rules not synced; a full Sync is needed")
