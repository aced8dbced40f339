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
// the source sends another one (a new commit). The last healthy revision
// is recorded in the Source's status too (lastHealthyRevision): a kiln
// that restarts, or another server that takes over, reads it back from a
// source that keeps its revisions (sources.Revisions: the hosted
// source). Other sources have no healthy snapshot to go back to after a
// restart until a revision has been healthy once.

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
	// recorded is the revision the Source's status names as the last
	// healthy one; read is the last of those recordedHealthy tried.
	recorded, read string
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
	}
	if rb.healthy == nil {
		rb.healthy = l.recordedHealthy()
	}
	if rb.healthy == nil || rb.healthy.Revision == l.last.Revision || rb.failed == l.last.Revision {
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

// unrecorded reports whether the last healthy revision is not yet in the
// Source's status.
func (l *sourceLoop) unrecorded() bool {
	return l.rollback.healthy != nil && l.rollback.healthy.Revision != l.rollback.recorded
}

// recordHealthy puts the last healthy revision into a status being
// written. The loop's status writes carry it, so that noting it never
// costs a write of its own on the way to the next sync.
func (l *sourceLoop) recordHealthy(st *SourceStatus) {
	if l.rollback.healthy != nil {
		st.LastHealthyRevision = l.rollback.healthy.Revision
		l.rollback.recorded = st.LastHealthyRevision
	}
}

// recordedHealthy reads the snapshot of the revision the Source's status
// names as the last healthy one, when the source keeps its revisions; nil
// otherwise.
func (l *sourceLoop) recordedHealthy() *sources.Snapshot {
	revs, ok := l.fetcher.(sources.Revisions)
	if !ok || l.rollback.recorded == "" || l.rollback.read == l.rollback.recorded {
		return nil
	}
	l.rollback.read = l.rollback.recorded // once per revision, even if it fails
	snap, err := revs.SnapshotAt(l.rollback.recorded)
	if err != nil {
		l.log.Warn("cannot read the last healthy revision", "revision", l.rollback.recorded, "err", err)
		return nil
	}
	return snap
}

// prependRecord adds rec to the front of the history, keeping MaxHistory.
func prependRecord(h []SyncRecord, rec SyncRecord) []SyncRecord {
	h = append([]SyncRecord{rec}, h...)
	if len(h) > MaxHistory {
		h = h[:MaxHistory]
	}
	return h
}
