package expectations

import (
	"testing"
	"time"
)

// The same sequence ran as TestExpectations in the replicaset ("ns/rs")
// and daemonset ("ns/ds") packages before the Tracker moved here.
func TestTracker(t *testing.T) {
	for _, key := range []string{"ns/rs", "ns/ds"} {
		t.Run(key, func(t *testing.T) {
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			e := New(5*time.Minute, func() time.Time { return now })
			satisfied := func(want bool) {
				t.Helper()
				if ok, _ := e.Satisfied(key); ok != want {
					t.Fatalf("satisfied = %v, want %v", ok, want)
				}
			}

			satisfied(true) // nothing recorded: a new controller may act
			e.ExpectCreations(key, 2)
			satisfied(false)
			e.CreationsObserved(key, 1)
			satisfied(false)
			e.CreationsObserved(key, 1)
			satisfied(true)

			e.ExpectDeletions(key, []string{"ns/a", "ns/b"})
			satisfied(false)
			e.DeletionObserved(key, "ns/a")
			e.DeletionObserved(key, "ns/a") // seen again as the delete: once
			e.DeletionObserved(key, "ns/x") // not ours to wait for
			satisfied(false)
			e.DeletionObserved(key, "ns/b")
			satisfied(true)

			e.ExpectCreations(key, 1)
			now = now.Add(4 * time.Minute)
			if ok, wait := e.Satisfied(key); ok || wait != time.Minute {
				t.Fatalf("satisfied = %v, %v; want false, 1m", ok, wait)
			}
			now = now.Add(time.Minute)
			satisfied(true) // expired: act rather than wait forever

			e.ExpectCreations(key, 1)
			e.Forget(key)
			satisfied(true)
		})
	}
}

func TestTracker_Expect_createsAndDeletes(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := New(5*time.Minute, func() time.Time { return now })
	e.Expect("ns/ds", 1, []string{"ns/a"})
	e.CreationsObserved("ns/ds", 1)
	if ok, _ := e.Satisfied("ns/ds"); ok {
		t.Fatal("satisfied with a delete still pending")
	}
	e.DeletionObserved("ns/ds", "ns/a")
	if ok, _ := e.Satisfied("ns/ds"); !ok {
		t.Fatal("not satisfied once both were observed")
	}
	if ok, _ := e.Satisfied("ns/other"); !ok {
		t.Fatal("another key waits on ns/ds")
	}
}
