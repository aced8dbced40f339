// Package expectations holds Tracker, kube's UIDTrackingControllerExpectations:
// per controller key, the Pod creates and deletes a sync has issued that
// the Pod informer has not yet shown. The replicaset, job and daemonset
// controllers share it; it talks to nothing and starts no goroutines.
//
// A sync checks Satisfied before it creates or deletes, records what it is
// about to do with ExpectCreations, ExpectDeletions or Expect, and the Pod
// event handlers lower the counts as the watch shows the writes:
//
//	exp := expectations.New(5*time.Minute, time.Now)
//	if ok, wait := exp.Satisfied(key); !ok {
//		queue.AddAfter(key, wait) // the cache is stale; act once it has caught up
//		return nil
//	}
//	exp.ExpectCreations(key, n)
//	// ... create n Pods; the Pod add handler calls exp.CreationsObserved(key, 1)
package expectations
