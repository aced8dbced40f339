package horizontalpodautoscaler

import (
	"math"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

// Stabilization and rate limits, as kube's HPA controller applies them
// to a recommendation: with spec.behavior its scaling rules; without, the
// rules that predate behavior (a fixed scale-down stabilization window
// and a scale-up of at most max(2x, 4) per sync).

// Condition reasons and messages of normalization, in kube's words.
const (
	reasonReadyForNewScale    = "ReadyForNewScale"
	reasonScaleUpStabilized   = "ScaleUpStabilized"
	reasonScaleDownStabilized = "ScaleDownStabilized"
	reasonDesiredWithinRange  = "DesiredWithinRange"
	reasonTooManyReplicas     = "TooManyReplicas"
	reasonTooFewReplicas      = "TooFewReplicas"
	reasonScaleUpLimit        = "ScaleUpLimit"
	reasonScaleDownLimit      = "ScaleDownLimit"

	msgReadyForNewScale    = "recommended size matches current size"
	msgScaleUpStabilized   = "recent recommendations were lower than current one, applying the lowest recent recommendation"
	msgScaleDownStabilized = "recent recommendations were higher than current one, applying the highest recent recommendation"
	msgDesiredWithinRange  = "the desired count is within the acceptable range"
	msgTooManyReplicas     = "the desired replica count is more than the maximum replica count"
	msgTooFewReplicas      = "the desired replica count is less than the minimum replica count"
	msgScaleUpLimit        = "the desired replica count is increasing faster than the maximum scale rate"
	msgScaleDownLimit      = "the desired replica count is decreasing faster than the maximum scale rate"
)

// Without behavior, a scale-up goes to at most max(factor x current,
// minimum) per sync (kube #32304: a bogus usage report must not explode
// the replica count).
const (
	scaleUpLimitFactor  = 2.0
	scaleUpLimitMinimum = 4.0
)

// recommendation is one unstabilized replica count and when it was made.
type recommendation struct {
	replicas int32
	at       time.Time
}

// scaleEvent is one rescale: its change in replicas and when.
type scaleEvent struct {
	change   int32
	at       time.Time
	outdated bool
}

// history is what one HPA's stabilization and rate limits look back on.
// It is in memory only, as in kube.
type history struct {
	recommendations      []recommendation
	scaleUps, scaleDowns []scaleEvent
}

// normalized is a recommendation after stabilization and limits, with
// the AbleToScale and ScalingLimited reasons that explain it.
type normalized struct {
	replicas                  int32
	ableReason, ableMessage   string
	limited                   bool
	limitReason, limitMessage string
}

// normalizeInput is one normalization's arguments.
type normalizeInput struct {
	current, desired, min, max int32
	// behavior is nil for the rules that predate it, else with defaults
	// filled in (withDefaults).
	behavior *autoscalingv2.HorizontalPodAutoscalerBehavior
	// downscaleWindow is the stabilization window without behavior.
	downscaleWindow time.Duration
	now             time.Time
}

// normalize stabilizes in.desired against h's recent recommendations
// (recording it there) and limits it to [min, max] and the scaling
// rate.
func (h *history) normalize(in normalizeInput) normalized {
	var out normalized
	var stabilized int32
	if in.behavior == nil {
		stabilized = h.stabilize(in.desired, in.downscaleWindow, in.now)
		out.ableReason, out.ableMessage = reasonScaleDownStabilized, msgScaleDownStabilized
		out.replicas, out.limitReason, out.limitMessage = limitLegacy(in.current, stabilized, in.min, in.max)
	} else {
		stabilized, out.ableReason, out.ableMessage = h.stabilizeWithBehavior(in)
		limited := in
		limited.desired = stabilized
		out.replicas, out.limitReason, out.limitMessage = h.limitWithBehavior(limited)
	}
	if stabilized == in.desired {
		out.ableReason, out.ableMessage = reasonReadyForNewScale, msgReadyForNewScale
	}
	out.limited = out.replicas != stabilized
	return out
}

// recordInitial makes the current replicas the first recommendation, so
// that a new HPA (or leader) does not scale down before a window passed.
func (h *history) recordInitial(current int32, now time.Time) {
	if len(h.recommendations) == 0 {
		h.recommendations = append(h.recommendations, recommendation{current, now})
	}
}

// stabilize is kube's stabilizeRecommendation: the highest recommendation
// within window, desired included; desired is recorded, over an expired
// one if there is one.
func (h *history) stabilize(desired int32, window time.Duration, now time.Time) int32 {
	highest := desired
	old := -1
	cutoff := now.Add(-window)
	for i, r := range h.recommendations {
		if r.at.Before(cutoff) {
			old = i
		} else if r.replicas > highest {
			highest = r.replicas
		}
	}
	h.record(old, recommendation{desired, now})
	return highest
}

func (h *history) record(old int, r recommendation) {
	if old >= 0 {
		h.recommendations[old] = r
	} else {
		h.recommendations = append(h.recommendations, r)
	}
}

// limitLegacy is kube's convertDesiredReplicasWithRules.
func limitLegacy(current, desired, min, max int32) (int32, string, string) {
	upLimit := int32(math.Max(scaleUpLimitFactor*float64(current), scaleUpLimitMinimum))
	highest, reason, msg := max, reasonTooManyReplicas, msgTooManyReplicas
	if max > upLimit {
		highest, reason, msg = upLimit, reasonScaleUpLimit, msgScaleUpLimit
	}
	switch {
	case desired < min:
		return min, reasonTooFewReplicas, msgTooFewReplicas
	case desired > highest:
		return highest, reason, msg
	}
	return desired, reasonDesiredWithinRange, msgDesiredWithinRange
}

// stabilizeWithBehavior is kube's stabilizeRecommendationWithBehaviors:
// no higher than the lowest recommendation of the scale-up window, no
// lower than the highest of the scale-down window, counting from the
// current replicas. desired is recorded.
func (h *history) stabilizeWithBehavior(in normalizeInput) (int32, string, string) {
	up, down := in.desired, in.desired
	upCutoff := in.now.Add(-time.Duration(*in.behavior.ScaleUp.StabilizationWindowSeconds) * time.Second)
	downCutoff := in.now.Add(-time.Duration(*in.behavior.ScaleDown.StabilizationWindowSeconds) * time.Second)
	old := -1
	for i, r := range h.recommendations {
		if r.at.After(upCutoff) {
			up = min(up, r.replicas)
		}
		if r.at.After(downCutoff) {
			down = max(down, r.replicas)
		}
		if r.at.Before(upCutoff) && r.at.Before(downCutoff) {
			old = i
		}
	}
	rec := in.current
	if rec < up {
		rec = up
	}
	if rec > down {
		rec = down
	}
	h.record(old, recommendation{in.desired, in.now})
	if in.desired >= in.current {
		return rec, reasonScaleUpStabilized, msgScaleUpStabilized
	}
	return rec, reasonScaleDownStabilized, msgScaleDownStabilized
}

// limitWithBehavior is kube's convertDesiredReplicasWithBehaviorRate.
func (h *history) limitWithBehavior(in normalizeInput) (int32, string, string) {
	switch {
	case in.desired > in.current:
		limit := max(in.current, scaleUpLimit(in.current, h.scaleUps, h.scaleDowns, in.behavior.ScaleUp, in.now))
		highest, reason, msg := in.max, reasonTooManyReplicas, msgTooManyReplicas
		if highest > limit {
			highest, reason, msg = limit, reasonScaleUpLimit, msgScaleUpLimit
		}
		if in.desired > highest {
			return highest, reason, msg
		}
	case in.desired < in.current:
		limit := min(in.current, scaleDownLimit(in.current, h.scaleUps, h.scaleDowns, in.behavior.ScaleDown, in.now))
		lowest, reason, msg := in.min, reasonTooFewReplicas, msgTooFewReplicas
		if lowest < limit {
			lowest, reason, msg = limit, reasonScaleDownLimit, msgScaleDownLimit
		}
		if in.desired < lowest {
			return lowest, reason, msg
		}
	}
	return in.desired, reasonDesiredWithinRange, msgDesiredWithinRange
}

// scaleUpLimit is kube's calculateScaleUpLimitWithScalingRules: each
// policy allows its Pods or Percent more than the replicas at the start
// of its period; selectPolicy picks the most (Max) or least (Min) of
// them, and Disabled allows none.
func scaleUpLimit(current int32, ups, downs []scaleEvent, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	sel := *rules.SelectPolicy
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	result := int32(math.MinInt32)
	pick := func(a, b int32) int32 { return max(a, b) }
	if sel == autoscalingv2.MinChangePolicySelect {
		result = math.MaxInt32
		pick = func(a, b int32) int32 { return min(a, b) }
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start + p.Value
		case autoscalingv2.PercentScalingPolicy:
			// Rounded up, or a small target would never grow.
			proposed = int32(math.Ceil(float64(start) * (1 + float64(p.Value)/100)))
		}
		result = pick(result, proposed)
	}
	return result
}

// scaleDownLimit is kube's calculateScaleDownLimitWithBehaviors.
func scaleDownLimit(current int32, ups, downs []scaleEvent, rules *autoscalingv2.HPAScalingRules, now time.Time) int32 {
	sel := *rules.SelectPolicy
	if sel == autoscalingv2.DisabledPolicySelect {
		return current
	}
	result := int32(math.MaxInt32)
	pick := func(a, b int32) int32 { return min(a, b) }
	if sel == autoscalingv2.MinChangePolicySelect {
		result = math.MinInt32
		pick = func(a, b int32) int32 { return max(a, b) }
	}
	for _, p := range rules.Policies {
		start := current - changeInPeriod(p.PeriodSeconds, ups, now) + changeInPeriod(p.PeriodSeconds, downs, now)
		var proposed int32
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy:
			proposed = start - p.Value
		case autoscalingv2.PercentScalingPolicy:
			proposed = int32(float64(start) * (1 - float64(p.Value)/100))
		}
		result = pick(result, proposed)
	}
	return result
}

// changeInPeriod sums the changes of the events within the last period
// seconds.
func changeInPeriod(periodSeconds int32, events []scaleEvent, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.at.After(cutoff) {
			n += e.change
		}
	}
	return n
}

// recordScale remembers a rescale from prev to next for the scaling
// policies, reusing the slot of an event older than every policy's
// period. Without behavior nothing looks at them (kube's storeScaleEvent).
func (h *history) recordScale(behavior *autoscalingv2.HorizontalPodAutoscalerBehavior, prev, next int32, now time.Time) {
	if behavior == nil || prev == next {
		return
	}
	events, rules, change := &h.scaleUps, behavior.ScaleUp, next-prev
	if next < prev {
		events, rules, change = &h.scaleDowns, behavior.ScaleDown, prev-next
	}
	var longest int32
	for _, p := range rules.Policies {
		longest = max(longest, p.PeriodSeconds)
	}
	cutoff := now.Add(-time.Duration(longest) * time.Second)
	old := -1
	for i := range *events {
		if (*events)[i].at.Before(cutoff) {
			(*events)[i].outdated = true
		}
		if (*events)[i].outdated {
			old = i
		}
	}
	e := scaleEvent{change: change, at: now}
	if old >= 0 {
		(*events)[old] = e
	} else {
		*events = append(*events, e)
	}
}

// Kube's default scaling rules (autoscaling/v2 GenerateHPAScaleUpRules and
// GenerateHPAScaleDownRules).
const (
	defaultScaleUpPods      = 4
	defaultScaleUpPercent   = 100
	defaultScaleUpPeriod    = 15
	defaultScaleDownPercent = 100
	defaultScaleDownPeriod  = 15
)

// withDefaults returns a copy of b with every unset rule filled in as
// kube-apiserver defaults a behavior that is set (kiln's does not): up
// by max(4 pods, 100%) per 15 s with no stabilization, down by up to 100%
// per 15 s after downWindow of stabilization. Nil stays nil.
func withDefaults(b *autoscalingv2.HorizontalPodAutoscalerBehavior, downWindow time.Duration) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	if b == nil {
		return nil
	}
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	zero := int32(0)
	down := int32(downWindow / time.Second)
	up := &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: &zero,
		SelectPolicy:               &maxPolicy,
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: defaultScaleUpPods, PeriodSeconds: defaultScaleUpPeriod},
			{Type: autoscalingv2.PercentScalingPolicy, Value: defaultScaleUpPercent, PeriodSeconds: defaultScaleUpPeriod},
		},
	}
	dn := &autoscalingv2.HPAScalingRules{
		StabilizationWindowSeconds: &down,
		SelectPolicy:               &maxPolicy,
		Policies: []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: defaultScaleDownPercent, PeriodSeconds: defaultScaleDownPeriod},
		},
	}
	out := b.DeepCopy()
	out.ScaleUp = fillRules(out.ScaleUp, up)
	out.ScaleDown = fillRules(out.ScaleDown, dn)
	return out
}

// fillRules sets in def what from sets (kube's copyHPAScalingRules).
func fillRules(from, def *autoscalingv2.HPAScalingRules) *autoscalingv2.HPAScalingRules {
	if from == nil {
		return def
	}
	if from.SelectPolicy != nil {
		def.SelectPolicy = from.SelectPolicy
	}
	if from.StabilizationWindowSeconds != nil {
		def.StabilizationWindowSeconds = from.StabilizationWindowSeconds
	}
	if from.Policies != nil {
		def.Policies = from.Policies
	}
	if from.Tolerance != nil {
		def.Tolerance = from.Tolerance
	}
	return def
}
