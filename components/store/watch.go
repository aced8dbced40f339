package store

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what happened to a key.
type EventType int

const (
	// Put is a create or update; Event.Prev is nil for a create.
	Put EventType = iota
	// Deleted is a delete; Event.KV holds the last value, with
	// ModRevision set to the revision of the delete.
	Deleted
	// Progress carries no change: every event up to Event.Revision has
	// been delivered.
	Progress
	// Error ends the stream; Event.Err says why (ErrCompacted when the
	// start revision is gone).
	Error
)

// Event is one change under a watched prefix.
type Event struct {
	Type     EventType
	KV       KV
	Prev     *KV
	Revision int64
	Err      error
}

// Watch streams changes under prefix from revision fromRev (inclusive;
// 0 means from now). The channel closes when ctx is done or after an Error
// event. Events of one etcd transaction arrive together and in order.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan Event {
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithProgressNotify()}
	if fromRev > 0 {
		opts = append(opts, clientv3.WithRev(fromRev))
	}
	wch := s.Client().Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	out := make(chan Event, 100)
	go func() {
		defer close(out)
		send := func(e Event) bool {
			select {
			case out <- e:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if resp.CompactRevision != 0 {
				send(Event{Type: Error, Err: ErrCompacted, Revision: resp.CompactRevision})
				return
			}
			if err := resp.Err(); err != nil {
				send(Event{Type: Error, Err: mapErr(err)})
				return
			}
			if resp.IsProgressNotify() {
				if !send(Event{Type: Progress, Revision: resp.Header.Revision}) {
					return
				}
				continue
			}
			for _, ev := range resp.Events {
				e := Event{Revision: ev.Kv.ModRevision}
				if ev.PrevKv != nil {
					p := toKV(ev.PrevKv)
					e.Prev = &p
				}
				if ev.Type == clientv3.EventTypeDelete {
					e.Type = Deleted
					if e.Prev == nil {
						continue // nothing to report a last state from
					}
					e.KV = *e.Prev
					e.KV.ModRevision = ev.Kv.ModRevision
				} else {
					e.Type = Put
					e.KV = toKV(ev.Kv)
				}
				if !send(e) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(Event{Type: Error, Err: context.Canceled})
		}
	}()
	return out
}

// RequestProgress asks etcd to send a Progress event to the watches started
// with ctx (they share one stream).
func (s *Store) RequestProgress(ctx context.Context) error {
	return s.Client().RequestProgress(clientv3.WithRequireLeader(ctx))
}
