package store

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactKey holds the revision of the last compaction. Servers that share
// an external etcd take turns through a compare-and-swap on it, as
// kube-apiserver does, so one interval compacts once.
const compactKey = "/kiln/compact"

type revSample struct {
	at  time.Time
	rev int64
}

// compactLoop samples the revision every interval and compacts to the
// newest sample older than CompactMinAge, or further when more than
// CompactRetention revisions would be kept.
func (s *Store) compactLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CompactInterval)
	defer t.Stop()
	var samples []revSample
	var last int64
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			cur, err := s.CurrentRevision(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.cfg.Logger.Warn("compaction: read revision", "err", err)
				continue
			}
			samples = append(samples, revSample{at: now, rev: cur})
			var target int64
			for len(samples) > 0 && now.Sub(samples[0].at) >= s.cfg.CompactMinAge {
				target = samples[0].rev
				samples = samples[1:]
			}
			if r := cur - s.cfg.CompactRetention; r > target {
				target = r
			}
			if target <= last {
				continue
			}
			if err := s.compactOnce(ctx, target); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.cfg.Logger.Warn("compaction failed", "revision", target, "err", err)
				continue
			}
			last = target
			s.cfg.Logger.Debug("compacted", "revision", target)
		}
	}
}

func (s *Store) compactOnce(ctx context.Context, rev int64) error {
	cli := s.Client()
	resp, err := cli.Get(ctx, compactKey)
	if err != nil {
		return mapErr(err)
	}
	var version int64
	if len(resp.Kvs) > 0 {
		version = resp.Kvs[0].Version
	}
	txn, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(compactKey), "=", version)).
		Then(clientv3.OpPut(compactKey, "")).Commit()
	if err != nil {
		return mapErr(err)
	}
	if !txn.Succeeded {
		return nil // another server compacted in this interval
	}
	err = s.Compact(ctx, rev)
	if errors.Is(err, ErrCompacted) {
		return nil
	}
	return err
}
