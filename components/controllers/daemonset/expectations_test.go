package daemonset

import (
	"testing"
	"time"
)

func TestExpectations(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newExpectations(5*time.Minute, func() time.Time { return now })
	satisfied := func(want bool) {
		t.Helper()
		if ok, _ := e.satisfied("ns/ds"); ok != want {
			t.Fatalf("satisfied = %v, want %v", ok, want)
		}
	}

	satisfied(true) // nothing recorded: a new controller may act
	e.expectCreations("ns/ds", 2)
	satisfied(false)
	e.creationsObserved("ns/ds", 1)
	satisfied(false)
	e.creationsObserved("ns/ds", 1)
	satisfied(true)

	e.expectDeletions("ns/ds", []string{"ns/a", "ns/b"})
	satisfied(false)
	e.deletionObserved("ns/ds", "ns/a")
	e.deletionObserved("ns/ds", "ns/a") // seen again as the delete: once
	e.deletionObserved("ns/ds", "ns/x") // not ours to wait for
	satisfied(false)
	e.deletionObserved("ns/ds", "ns/b")
	satisfied(true)

	e.expectCreations("ns/ds", 1)
	now = now.Add(4 * time.Minute)
	if ok, wait := e.satisfied("ns/ds"); ok || wait != time.Minute {
		t.Fatalf("satisfied = %v, %v; want false, 1m", ok, wait)
	}
	now = now.Add(time.Minute)
	satisfied(true) // expired: act rather than wait forever

	e.expectCreations("ns/ds", 1)
	e.forget("ns/ds")
	satisfied(true)
}
