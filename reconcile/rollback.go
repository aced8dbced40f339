package reconcile

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"kiln.dev/kiln/sources"
)

// Health-gated rollback (issue 10). A source with rollback: auto keeps,
// in memory, the last snapshot whose objects were all healthy. When the
// revision applied after it turns Degraded (a Deployment past its
// progress deadline, a failed Job, a crash-looping bare Pod: Assess's
// rules), the loop applies that snapshot again, as a sync like any other,
// and says so: a history record whose rollbackOf names the failed
// revision, the RolledBack condition, a Warning Event. The source's
// branch is not rewritten; the failed revision is not applied again until
// the source sends another one (a new commit). A kiln that restarts with
// a failed revision applied has no healthy snapshot to go back to until a
// revision has been healthy once.

// RollbackAuto is SourceSpec.Rollback's value that turns rollback on.
const RollbackAuto = "auto"

// ConditionRolledBack is true while the live revision is a rollback: its
// message says which revision failed and why. The next successful sync of
// a new revision removes it.
const ConditionRolledBack = "RolledBack"

// rollbackState is what a source's loop remembers for rollbacks. It is
// owned by the loop's goroutine.
type rollbackState struct {
	// healthy is the last snapshot seen healthy.
	healthy *sources.Snapshot
	// failed is the revision last rolled back, never rolled back twice.
	failed string
}

// noteHealth is called with every health judgement of the loop. It
// remembers the last healthy snapshot and, with rollback: auto, rolls
// back a revision that turned Degraded. It reports whether it applied
// something (the watches must then follow the new inventory).
func (l *sourceLoop) noteHealth(ctx context.Context, h Health) bool {
	rb := &l.rollback
	switch {
	case l.last == nil:
		return false
	case h.Status == HealthHealthy:
		l.noteHealthy(h)
		return false
	case h.Status != HealthDegraded || l.spec.Rollback != RollbackAuto:
		return false
	case rb.healthy == nil || rb.healthy.Revision == l.last.Revision || rb.failed == l.last.Revision:
		return false
	}
	bad, good := l.last, rb.healthy
	rb.failed = bad.Revision
	why := fmt.Sprintf("revision %s is not healthy (%s); re-applied %s, the last healthy revision", bad.Revision, h.Message, good.Revision)
	l.log.Warn("rolling back", "revision", bad.Revision, "to", good.Revision, "reason", h.Message)
	out := l.sync(ctx, good, l.inventory)
	out.record.RollbackOf = bad.Revision
	if out.err != nil {
		l.log.Warn("rollback failed", "revision", good.Revision, "err", out.err)
		l.writeStatus(ctx, func(st *SourceStatus, gen int64) {
			st.History = prependRecord(st.History, out.record)
			setCondition(st, ConditionRolledBack, false, "RollbackFailed", fmt.Sprintf("revision %s is not healthy (%s); re-applying %s failed: %v", bad.Revision, h.Message, good.Revision, out.err), gen)
		})
		l.event(ctx, corev1.EventTypeWarning, "RollbackFailed", fmt.Sprintf("revision %s: %v", good.Revision, out.err))
		return false
	}
	l.last, l.objects, l.inventory, l.appliedRV, l.appliedHash = good, out.objects, out.inventory, out.appliedRV, out.hashes
	l.writeStatus(ctx, func(st *SourceStatus, gen int64) {
		st.History = prependRecord(st.History, out.record)
		st.LastAppliedRevision = good.Revision
		st.LastAppliedCommit = commitOf(good)
		st.Inventory = out.inventory
		setCondition(st, ConditionReady, true, "RolledBack", fmt.Sprintf("applied revision %s (rolled back from %s)", good.Revision, bad.Revision), gen)
		setCondition(st, ConditionRolledBack, true, "HealthCheckFailed", why, gen)
	})
	l.event(ctx, corev1.EventTypeWarning, "RolledBack", why)
	return true
}

// noteHealthy remembers the applied snapshot as healthy when h says it
// is. The loop also calls it just before it applies a new snapshot: a
// revision healthy for less than a health interval is healthy still.
func (l *sourceLoop) noteHealthy(h Health) {
	if l.last != nil && h.Status == HealthHealthy {
		l.rollback.healthy = l.last
	}
}

// prependRecord adds rec to the front of the history, keeping MaxHistory.
func prependRecord(h []SyncRecord, rec SyncRecord) []SyncRecord {
	h = append([]SyncRecord{rec}, h...)
	if len(h) > MaxHistory {
		h = h[:MaxHistory]
	}
	return h
}
