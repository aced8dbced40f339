package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// tolerates reports whether tol tolerates taint, as
// corev1.Toleration.ToleratesTaint without the numeric operators (a Lt or
// Gt toleration tolerates nothing here).
func tolerates(tol *corev1.Toleration, taint *corev1.Taint) bool {
	if tol.Effect != "" && tol.Effect != taint.Effect {
		return false
	}
	if tol.Key != "" && tol.Key != taint.Key {
		return false
	}
	switch tol.Operator {
	case corev1.TolerationOpExists:
		return true
	case "", corev1.TolerationOpEqual:
		return tol.Key != "" && tol.Value == taint.Value
	}
	return false
}

// noExecute returns the NoExecute taints.
func noExecute(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

// evictionTime returns when a Pod with tols must leave a Node with the
// NoExecute taints: never (ok=false) if it tolerates each of them
// forever; else the earliest, over the taints, of the taint's start plus
// the shortest tolerationSeconds of the tolerations matching it, as kube's
// taint manager's getMinTolerationTime. A taint no toleration matches
// means its start, which is already past.
//
// A taint starts at timeAdded rounded up to the next second: the API
// stores timeAdded truncated to the second, and a Pod must never leave
// before its tolerationSeconds have passed. A taint without timeAdded
// starts at added.
func evictionTime(taints []corev1.Taint, tols []corev1.Toleration, added time.Time) (at time.Time, ok bool) {
	for i := range taints {
		taint := &taints[i]
		start := added
		if taint.TimeAdded != nil {
			start = taintStart(taint.TimeAdded.Time)
		}
		matched, forever := false, true
		var min time.Duration
		for j := range tols {
			if !tolerates(&tols[j], taint) {
				continue
			}
			matched = true
			if s := tols[j].TolerationSeconds; s != nil {
				d := time.Duration(max(*s, 0)) * time.Second
				if forever || d < min {
					min, forever = d, false
				}
			}
		}
		var t time.Time
		switch {
		case !matched:
			t = start
		case forever:
			continue
		default:
			t = start.Add(min)
		}
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// taintStart is the latest time a taint with timeAdded t, as stored with
// second precision, can have been added.
func taintStart(t time.Time) time.Time {
	if t.Truncate(time.Second).Equal(t) {
		return t.Add(time.Second)
	}
	return t
}
