package horizontalpodautoscaler

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
)

func ago(d time.Duration) time.Time { return now.Add(-d) }

func int32p(v int32) *int32 { return &v }

// behavior is a behavior with kube's defaults and the given scale-down
// stabilization window, changed by mutate.
func behavior(downWindow int32, mutate func(*autoscalingv2.HorizontalPodAutoscalerBehavior)) *autoscalingv2.HorizontalPodAutoscalerBehavior {
	b := &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: int32p(downWindow)}}
	if mutate != nil {
		mutate(b)
	}
	return withDefaults(b, DefaultDownscaleStabilizationWindow)
}

func TestHistory_normalize(t *testing.T) {
	disabled := autoscalingv2.DisabledPolicySelect
	tests := []struct {
		name                string
		history             history
		in                  normalizeInput
		want                int32
		wantAble, wantLimit string
		wantLimited         bool
	}{
		// Without behavior: kube's rules from before it.
		{name: "legacy: highest recommendation in the window wins",
			history: history{recommendations: []recommendation{{5, ago(100 * time.Second)}}},
			in:      normalizeInput{current: 5, desired: 2, min: 1, max: 10},
			want:    5, wantAble: reasonScaleDownStabilized, wantLimit: reasonDesiredWithinRange},
		{name: "legacy: a recommendation past the window no longer counts",
			history: history{recommendations: []recommendation{{5, ago(301 * time.Second)}}},
			in:      normalizeInput{current: 5, desired: 2, min: 1, max: 10},
			want:    2, wantAble: reasonReadyForNewScale, wantLimit: reasonDesiredWithinRange},
		{name: "legacy: scale-up at most max(2x, 4)",
			in:   normalizeInput{current: 1, desired: 10, min: 1, max: 20},
			want: 4, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "legacy: scale-up doubles",
			in:   normalizeInput{current: 3, desired: 10, min: 1, max: 20},
			want: 6, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "legacy: clamped at max",
			in:   normalizeInput{current: 3, desired: 10, min: 1, max: 5},
			want: 5, wantAble: reasonReadyForNewScale, wantLimit: reasonTooManyReplicas, wantLimited: true},
		{name: "legacy: clamped at min",
			in:   normalizeInput{current: 3, desired: 1, min: 2, max: 5},
			want: 2, wantAble: reasonReadyForNewScale, wantLimit: reasonTooFewReplicas, wantLimited: true},

		// With behavior: kube's scaling rules, defaults filled in.
		{name: "default scale-up: 4 pods beats 100% when small",
			in:   normalizeInput{current: 1, desired: 10, min: 1, max: 20, behavior: behavior(0, nil)},
			want: 5, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "default scale-up: 100% beats 4 pods when large",
			in:   normalizeInput{current: 10, desired: 50, min: 1, max: 40, behavior: behavior(0, nil)},
			want: 20, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "default scale-up: counted from the replicas 15 s ago",
			history: history{scaleUps: []scaleEvent{{change: 4, at: ago(5 * time.Second)}}},
			in:      normalizeInput{current: 5, desired: 20, min: 1, max: 40, behavior: behavior(0, nil)},
			want:    5, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "default scale-up: a step older than the period no longer counts",
			history: history{scaleUps: []scaleEvent{{change: 4, at: ago(16 * time.Second)}}},
			in:      normalizeInput{current: 5, desired: 20, min: 1, max: 40, behavior: behavior(0, nil)},
			want:    10, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "clamped at max below the rate limit",
			in:   normalizeInput{current: 4, desired: 20, min: 1, max: 6, behavior: behavior(0, nil)},
			want: 6, wantAble: reasonReadyForNewScale, wantLimit: reasonTooManyReplicas, wantLimited: true},
		{name: "scale-down stabilization window from behavior",
			history: history{recommendations: []recommendation{{8, ago(30 * time.Second)}}},
			in:      normalizeInput{current: 8, desired: 2, min: 1, max: 10, behavior: behavior(60, nil)},
			want:    8, wantAble: reasonScaleDownStabilized, wantLimit: reasonDesiredWithinRange},
		{name: "scale-down after the window, clamped at min",
			history: history{recommendations: []recommendation{{8, ago(61 * time.Second)}}},
			in:      normalizeInput{current: 8, desired: 1, min: 3, max: 10, behavior: behavior(60, nil)},
			want:    3, wantAble: reasonReadyForNewScale, wantLimit: reasonTooFewReplicas, wantLimited: true},
		{name: "unset scale-down window is the configured default",
			history: history{recommendations: []recommendation{{8, ago(200 * time.Second)}}},
			in: normalizeInput{current: 8, desired: 2, min: 1, max: 10,
				behavior: withDefaults(&autoscalingv2.HorizontalPodAutoscalerBehavior{}, 300*time.Second)},
			want: 8, wantAble: reasonScaleDownStabilized, wantLimit: reasonDesiredWithinRange},
		{name: "selectPolicy Disabled stops scale-down",
			in: normalizeInput{current: 5, desired: 2, min: 1, max: 10, behavior: behavior(0, func(b *autoscalingv2.HorizontalPodAutoscalerBehavior) {
				b.ScaleDown.SelectPolicy = &disabled
			})},
			want: 5, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleDownLimit, wantLimited: true},
		{name: "selectPolicy Disabled stops scale-up",
			in: normalizeInput{current: 5, desired: 9, min: 1, max: 10, behavior: behavior(0, func(b *autoscalingv2.HorizontalPodAutoscalerBehavior) {
				b.ScaleUp = &autoscalingv2.HPAScalingRules{SelectPolicy: &disabled}
			})},
			want: 5, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleUpLimit, wantLimited: true},
		{name: "scale-up stabilization window takes the lowest",
			history: history{recommendations: []recommendation{{3, ago(10 * time.Second)}}},
			in: normalizeInput{current: 3, desired: 6, min: 1, max: 10, behavior: behavior(0, func(b *autoscalingv2.HorizontalPodAutoscalerBehavior) {
				b.ScaleUp = &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: int32p(60)}
			})},
			want: 3, wantAble: reasonScaleUpStabilized, wantLimit: reasonDesiredWithinRange},
		{name: "scale-down policy of 1 pod per minute",
			in: normalizeInput{current: 5, desired: 1, min: 1, max: 10, behavior: behavior(0, func(b *autoscalingv2.HorizontalPodAutoscalerBehavior) {
				b.ScaleDown.Policies = []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 1, PeriodSeconds: 60}}
			})},
			want: 4, wantAble: reasonReadyForNewScale, wantLimit: reasonScaleDownLimit, wantLimited: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.now = now
			if tc.in.downscaleWindow == 0 {
				tc.in.downscaleWindow = DefaultDownscaleStabilizationWindow
			}
			h := tc.history
			got := h.normalize(tc.in)
			if got.replicas != tc.want || got.ableReason != tc.wantAble || got.limitReason != tc.wantLimit || got.limited != tc.wantLimited {
				t.Errorf("normalize = %d (AbleToScale %s, ScalingLimited %v %s); want %d (%s, %v %s)",
					got.replicas, got.ableReason, got.limited, got.limitReason, tc.want, tc.wantAble, tc.wantLimited, tc.wantLimit)
			}
			found := false
			for _, r := range h.recommendations {
				found = found || r.replicas == tc.in.desired && r.at.Equal(now)
			}
			if !found {
				t.Errorf("recommendation %d not recorded: %v", tc.in.desired, h.recommendations)
			}
		})
	}
}

// A scale-up recorded by recordScale holds the next step back for the
// policies' period; a history without behavior records nothing.
func TestHistory_recordScale(t *testing.T) {
	b := behavior(0, nil)
	var h history
	h.recordScale(b, 1, 5, now)
	in := normalizeInput{current: 5, desired: 20, min: 1, max: 40, behavior: b, now: now.Add(10 * time.Second)}
	if got := h.normalize(in); got.replicas != 5 {
		t.Errorf("10 s after 1 -> 5: %d, want 5", got.replicas)
	}
	in.now = now.Add(16 * time.Second)
	if got := h.normalize(in); got.replicas != 10 {
		t.Errorf("16 s after 1 -> 5: %d, want 10", got.replicas)
	}
	var legacy history
	legacy.recordScale(nil, 1, 5, now)
	if len(legacy.scaleUps) != 0 {
		t.Errorf("without behavior recorded %v", legacy.scaleUps)
	}
}
