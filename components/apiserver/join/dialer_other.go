//go:build !linux

package join

import "syscall"

// setUserTimeout is Linux-only (TCP_USER_TIMEOUT); keepalives still apply.
func setUserTimeout(_, _ string, _ syscall.RawConn) error { return nil }
