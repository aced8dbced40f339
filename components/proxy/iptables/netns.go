package iptables

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNetns runs fn on an OS thread that is in the network namespace at
// path; "" runs fn as is. Programs fn starts (iptables-restore) are forked
// from that thread and so live in the namespace, and files it opens under
// /proc/sys/net are that namespace's.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is returned to the runtime only once it is back in
		// its own namespace; if that fails it stays locked and the
		// runtime ends it with this goroutine.
		err := func() error {
			orig, err := netns.Get()
			if err != nil {
				return fmt.Errorf("current netns: %w", err)
			}
			defer orig.Close()
			target, err := netns.GetFromPath(path)
			if err != nil {
				return fmt.Errorf("open netns %s: %w", path, err)
			}
			defer target.Close()
			if err := netns.Set(target); err != nil {
				return fmt.Errorf("enter netns %s: %w", path, err)
			}
			ferr := fn()
			if err := netns.Set(orig); err != nil {
				return errors.Join(ferr, fmt.Errorf("leave netns %s: %w", path, err))
			}
			runtime.UnlockOSThread()
			return ferr
		}()
		errc <- err
	}()
	return <-errc
}
