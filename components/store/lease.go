package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseReuse is how long one granted lease is shared by keys with the same
// TTL, as kube-apiserver's lease manager does: a burst of events costs one
// grant, and a key lives at most this much longer than asked.
const leaseReuse = time.Minute

type leaseState struct {
	id      clientv3.LeaseID
	ttl     time.Duration
	expires time.Time
}

// lease returns a lease that lives at least ttl.
func (s *Store) lease(ctx context.Context, ttl time.Duration) (clientv3.LeaseID, error) {
	s.mu.Lock()
	cur := s.leases[ttl]
	s.mu.Unlock()
	now := time.Now()
	if cur.id != 0 && cur.expires.Sub(now) >= ttl {
		return cur.id, nil
	}
	total := ttl + leaseReuse
	resp, err := s.Client().Grant(ctx, int64(total/time.Second))
	if err != nil {
		return 0, mapErr(err)
	}
	s.mu.Lock()
	if s.leases == nil {
		s.leases = map[time.Duration]leaseState{}
	}
	s.leases[ttl] = leaseState{id: resp.ID, ttl: ttl, expires: now.Add(total)}
	s.mu.Unlock()
	return resp.ID, nil
}
