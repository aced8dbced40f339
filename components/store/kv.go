package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// KV is one stored value and its revisions.
type KV struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// PreconditionError says which extra key of a write was in the wrong state.
// It wraps ErrPrecondition.
type PreconditionError struct {
	Key string
	// Exists is true when the key had to be absent but was there, false
	// when it had to exist but was missing.
	Exists bool
}

func (e *PreconditionError) Error() string {
	if e.Exists {
		return fmt.Sprintf("key %s already exists", e.Key)
	}
	return fmt.Sprintf("key %s does not exist", e.Key)
}

// Unwrap makes errors.Is(err, ErrPrecondition) true.
func (e *PreconditionError) Unwrap() error { return ErrPrecondition }

// Extra is a key written in the same transaction as an object: Value set
// creates it (it must not exist yet), Value nil deletes it. Allocations
// (service IPs, node ports) ride along with their object this way so that
// they are never handed out twice nor leaked.
type Extra struct {
	Key   string
	Value []byte
}

// WriteOptions adds conditions and companions to one write.
type WriteOptions struct {
	// TTL attaches a lease so the key expires (events).
	TTL time.Duration
	// Require lists keys that must exist for the write to happen (the
	// namespace of a namespaced object).
	Require []string
	// Extras are created or deleted atomically with the write.
	Extras []Extra
}

// Get returns the value at key, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (KV, error) {
	resp, err := s.kvAPI().Get(ctx, key)
	if err != nil {
		return KV{}, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, ErrNotFound
	}
	return toKV(resp.Kvs[0]), nil
}

// CurrentRevision returns the store's newest revision.
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	resp, err := s.kvAPI().Get(ctx, "/kiln/revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr(err)
	}
	return resp.Header.Revision, nil
}

// CheckRevision returns ErrCompacted if rev is older than the oldest revision
// kept, ErrFutureRevision if it is newer than the store, and nil otherwise.
func (s *Store) CheckRevision(ctx context.Context, rev int64) error {
	_, err := s.kvAPI().Get(ctx, "/kiln/revision", clientv3.WithRev(rev), clientv3.WithCountOnly())
	return mapErr(err)
}

// OldestRevision returns the current revision and the oldest one a read or
// a watch may still start at: 1 before any compaction, else the revision of
// the last one. It searches with CheckRevision, about 2·log2(current)
// count-only reads; a compaction racing it can make the answer stale.
func (s *Store) OldestRevision(ctx context.Context) (oldest, current int64, err error) {
	current, err = s.CurrentRevision(ctx)
	if err != nil {
		return 0, 0, err
	}
	lo, hi := int64(1), current // the answer is in [lo, hi]
	for lo < hi {
		mid := lo + (hi-lo)/2
		switch err := s.CheckRevision(ctx, mid); {
		case err == nil:
			hi = mid
		case errors.Is(err, ErrCompacted):
			lo = mid + 1
		default:
			return 0, 0, err
		}
	}
	return lo, current, nil
}

// Create writes value at key if the key does not exist, and returns the new
// revision. It returns ErrExists if the key exists and a *PreconditionError
// if opts are not met.
func (s *Store) Create(ctx context.Context, key string, value []byte, opts WriteOptions) (int64, error) {
	var putOpts []clientv3.OpOption
	if opts.TTL > 0 {
		lease, err := s.lease(ctx, opts.TTL)
		if err != nil {
			return 0, err
		}
		putOpts = append(putOpts, clientv3.WithLease(lease))
	}
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", 0)}
	ops := []clientv3.Op{clientv3.OpPut(key, string(value), putOpts...)}
	conds, ops = addOptions(conds, ops, opts)
	resp, err := s.kvAPI().Txn(ctx).If(conds...).Then(ops...).Else(elseGets(key, opts)...).Commit()
	if err != nil {
		return 0, mapErr(err)
	}
	if !resp.Succeeded {
		if exists(resp, 0) {
			return 0, ErrExists
		}
		return 0, whichPrecondition(resp, 1, opts)
	}
	return resp.Header.Revision, nil
}

// Update replaces the value at key if its mod revision is still rev, and
// returns the new revision. ErrNotFound if the key is gone, ErrConflict if
// it changed. A lease on the key is kept.
func (s *Store) Update(ctx context.Context, key string, value []byte, rev int64, opts WriteOptions) (int64, error) {
	conds := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}
	ops := []clientv3.Op{clientv3.OpPut(key, string(value), clientv3.WithIgnoreLease())}
	conds, ops = addOptions(conds, ops, opts)
	resp, err := s.kvAPI().Txn(ctx).If(conds...).Then(ops...).Else(elseGets(key, opts)...).Commit()
	if err != nil {
		return 0, mapErr(err)
	}
	if !resp.Succeeded {
		return 0, s.casFailure(resp, rev, opts)
	}
	return resp.Header.Revision, nil
}

// Delete removes key if its mod revision is still rev (0 means any), with
// opts.Extras, and returns the revision of the delete.
func (s *Store) Delete(ctx context.Context, key string, rev int64, opts WriteOptions) (int64, error) {
	var conds []clientv3.Cmp
	if rev > 0 {
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
	} else {
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(key), ">", 0))
	}
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	conds, ops = addOptions(conds, ops, opts)
	resp, err := s.kvAPI().Txn(ctx).If(conds...).Then(ops...).Else(elseGets(key, opts)...).Commit()
	if err != nil {
		return 0, mapErr(err)
	}
	if !resp.Succeeded {
		return 0, s.casFailure(resp, rev, opts)
	}
	return resp.Header.Revision, nil
}

func (s *Store) casFailure(resp *clientv3.TxnResponse, rev int64, opts WriteOptions) error {
	if !exists(resp, 0) {
		return ErrNotFound
	}
	kv := resp.Responses[0].GetResponseRange().Kvs[0]
	if rev > 0 && kv.ModRevision != rev {
		return ErrConflict
	}
	return whichPrecondition(resp, 1, opts)
}

// addOptions turns Require and Extras into compares and ops.
func addOptions(conds []clientv3.Cmp, ops []clientv3.Op, opts WriteOptions) ([]clientv3.Cmp, []clientv3.Op) {
	for _, k := range opts.Require {
		conds = append(conds, clientv3.Compare(clientv3.ModRevision(k), ">", 0))
	}
	for _, e := range opts.Extras {
		if e.Value != nil {
			conds = append(conds, clientv3.Compare(clientv3.ModRevision(e.Key), "=", 0))
			ops = append(ops, clientv3.OpPut(e.Key, string(e.Value)))
		} else {
			ops = append(ops, clientv3.OpDelete(e.Key))
		}
	}
	return conds, ops
}

// elseGets reads back the object and every conditioned key so a failed
// transaction can say which condition broke without another round trip.
func elseGets(key string, opts WriteOptions) []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpGet(key)}
	for _, k := range opts.Require {
		ops = append(ops, clientv3.OpGet(k, clientv3.WithCountOnly()))
	}
	for _, e := range opts.Extras {
		if e.Value != nil {
			ops = append(ops, clientv3.OpGet(e.Key, clientv3.WithCountOnly()))
		}
	}
	return ops
}

func exists(resp *clientv3.TxnResponse, i int) bool {
	r := resp.Responses[i].GetResponseRange()
	return r != nil && r.Count > 0
}

func whichPrecondition(resp *clientv3.TxnResponse, i int, opts WriteOptions) error {
	for _, k := range opts.Require {
		if !exists(resp, i) {
			return &PreconditionError{Key: k}
		}
		i++
	}
	for _, e := range opts.Extras {
		if e.Value == nil {
			continue
		}
		if exists(resp, i) {
			return &PreconditionError{Key: e.Key, Exists: true}
		}
		i++
	}
	return ErrConflict
}

// ListOptions selects a page of a prefix.
type ListOptions struct {
	// Revision reads at that revision; 0 means the newest.
	Revision int64
	// StartKey continues a paged list after the previous page; it must lie
	// under the prefix.
	StartKey string
	// Limit caps the number of keys returned; 0 means all.
	Limit int64
	// KeysOnly leaves the values out: keys and revisions only.
	KeysOnly bool
}

// ListResult is one page.
type ListResult struct {
	KVs      []KV
	Revision int64
	// More is true if keys remain after the last one returned; Remaining
	// counts them.
	More      bool
	Remaining int64
}

// List returns the keys under prefix at one revision.
func (s *Store) List(ctx context.Context, prefix string, opts ListOptions) (ListResult, error) {
	start := prefix
	if opts.StartKey != "" {
		if !strings.HasPrefix(opts.StartKey, prefix) {
			return ListResult{}, fmt.Errorf("list: start key %q outside prefix %q", opts.StartKey, prefix)
		}
		start = opts.StartKey
	}
	getOpts := []clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))}
	if opts.Revision > 0 {
		getOpts = append(getOpts, clientv3.WithRev(opts.Revision))
	}
	if opts.Limit > 0 {
		getOpts = append(getOpts, clientv3.WithLimit(opts.Limit))
	}
	if opts.KeysOnly {
		getOpts = append(getOpts, clientv3.WithKeysOnly())
	}
	resp, err := s.kvAPI().Get(ctx, start, getOpts...)
	if err != nil {
		return ListResult{}, mapErr(err)
	}
	res := ListResult{Revision: resp.Header.Revision, More: resp.More}
	if opts.Revision > 0 {
		res.Revision = opts.Revision
	}
	res.KVs = make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		res.KVs[i] = toKV(kv)
	}
	if resp.More {
		res.Remaining = resp.Count - int64(len(resp.Kvs))
	}
	return res, nil
}

// Compact removes the history before rev.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.Client().Compact(ctx, rev, clientv3.WithCompactPhysical())
	return mapErr(err)
}

func toKV(kv *mvccpb.KeyValue) KV {
	return KV{Key: string(kv.Key), Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}
}

// mapErr turns etcd's errors into the package's sentinels.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return ErrCompacted
	case errors.Is(err, rpctypes.ErrFutureRev):
		return ErrFutureRevision
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	// The client sometimes hands back the gRPC status rather than the typed
	// error; match on the text etcd puts in it.
	msg := err.Error()
	switch {
	case strings.Contains(msg, rpctypes.ErrCompacted.Error()):
		return ErrCompacted
	case strings.Contains(msg, rpctypes.ErrFutureRev.Error()):
		return ErrFutureRevision
	case strings.Contains(msg, "request is too large"), strings.Contains(msg, "larger than max"):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return err
}
