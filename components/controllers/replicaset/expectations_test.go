package replicaset

import (
	"testing"
	"time"
)

func TestExpectations(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := newExpectations(5*time.Minute, func() time.Time { return now })
	satisfied := func(want bool) {
		t.Helper()
		if ok, _ := e.satisfied("ns/rs"); ok != want {
			t.Fatalf("satisfied = %v, want %v", ok, want)
		}
	}

	satisfied(true) // nothing recorded: a new controller may act
	e.expectCreations("ns/rs", 2)
	satisfied(false)
	e.creationsObserved("ns/rs", 1)
	satisfied(false)
	e.creationsObserved("ns/rs", 1)
	satisfied(true)

	e.expectDeletions("ns/rs", []string{"ns/a", "ns/b"})
	satisfied(false)
	e.deletionObserved("ns/rs", "ns/a")
	e.deletionObserved("ns/rs", "ns/a") // seen again as the delete: once
	e.deletionObserved("ns/rs", "ns/x") // not ours to wait for
	satisfied(false)
	e.deletionObserved("ns/rs", "ns/b")
	satisfied(true)

	e.expectCreations("ns/rs", 1)
	now = now.Add(4 * time.Minute)
	if ok, wait := e.satisfied("ns/rs"); ok || wait != time.Minute {
		t.Fatalf("satisfied = %v, %v; want false, 1m", ok, wait)
	}
	now = now.Add(time.Minute)
	satisfied(true) // expired: act rather than wait forever

	e.expectCreations("ns/rs", 1)
	e.forget("ns/rs")
	satisfied(true)
}
