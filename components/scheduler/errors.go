package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrRunTwice is returned by a second call of Run.
var ErrRunTwice = errors.New("scheduler: Run called twice")

// errNoNodes is the decision when the cluster has no nodes; its text is
// kube-scheduler's.
var errNoNodes = errors.New("no nodes available to schedule pods")

// FitError is the decision that no node fits a pod: for each reason a
// filter gave, how many nodes gave it.
type FitError struct {
	// NumAllNodes is the number of nodes considered.
	NumAllNodes int
	// Reasons counts nodes per reason; a node rejected for two reasons
	// (Insufficient cpu and Insufficient memory) counts in both.
	Reasons map[string]int
	// plugins are the filters that rejected nodes, for requeueing.
	plugins plugin
	// preFilter, when set, rejected the pod before any node was looked
	// at and is the message's only reason.
	preFilter string
}

// Error is kube-scheduler's message: "0/3 nodes are available: 1 node(s)
// had untolerated taint {k: v}, 2 Insufficient cpu." The counted reasons
// are sorted as strings, count first, as kube sorts them.
func (e *FitError) Error() string {
	msg := fmt.Sprintf("0/%d nodes are available:", e.NumAllNodes)
	if e.preFilter != "" {
		return msg + " " + e.preFilter + "."
	}
	parts := make([]string, 0, len(e.Reasons))
	for reason, n := range e.Reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, reason))
	}
	sort.Strings(parts)
	if len(parts) > 0 {
		msg += " " + strings.Join(parts, ", ") + "."
	}
	return msg
}
