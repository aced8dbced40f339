package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// hostedPrefix holds the hosted git repositories as every server shares
// them: the pack of each accepted push and the refs. A push taken by any
// server is recorded here before its ref moves, and each server's copy of
// the repository follows (sources/hosted/gitserver).
const hostedPrefix = "/kiln/hosted/"

// hostedChunkBytes is the size of one stored piece of a pack, well under
// etcd's default request limit (1.5 MiB).
const hostedChunkBytes = 512 << 10

// HostedState is what the datastore holds of one hosted repository.
type HostedState struct {
	// Packs are the ids of the stored packs, oldest first: a pack may
	// hold deltas against objects of an earlier one.
	Packs []string
	// Refs maps each ref name to its commit (hex).
	Refs map[string]string
	// Revision is the datastore revision of this state; WatchHosted from
	// Revision+1 sees every later change.
	Revision int64
}

// packManifest is stored at packs/<id> once every chunk is.
type packManifest struct {
	Chunks int    `json:"chunks"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func hostedKey(repo string, parts ...string) string {
	return hostedPrefix + repo + "/" + strings.Join(parts, "/")
}

// PutHostedPack stores the pack read from r for repo and returns its id.
// The chunks go first and the manifest last, so a reader never sees a
// pack that is not whole.
func (s *Store) PutHostedPack(ctx context.Context, repo string, r io.Reader) (string, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	id := time.Now().UTC().Format("20060102T150405.000000000") + "-" + hex.EncodeToString(rnd[:])
	h := sha256.New()
	buf := make([]byte, hostedChunkBytes)
	var m packManifest
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			h.Write(buf[:n])
			key := hostedKey(repo, "chunks", id, fmt.Sprintf("%06d", m.Chunks))
			if _, perr := s.kvAPI().Put(ctx, key, string(buf[:n])); perr != nil {
				return "", fmt.Errorf("store: pack of %s: %w", repo, mapErr(perr))
			}
			m.Chunks++
			m.Size += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("store: pack of %s: %w", repo, err)
		}
	}
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	b, _ := json.Marshal(m)
	if _, err := s.kvAPI().Put(ctx, hostedKey(repo, "packs", id), string(b)); err != nil {
		return "", fmt.Errorf("store: pack of %s: %w", repo, mapErr(err))
	}
	return id, nil
}

// HostedPack reads back the pack id of repo, checked against its digest.
func (s *Store) HostedPack(ctx context.Context, repo, id string) ([]byte, error) {
	resp, err := s.kvAPI().Get(ctx, hostedKey(repo, "packs", id))
	if err != nil {
		return nil, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("store: pack %s of %s: %w", id, repo, ErrNotFound)
	}
	var m packManifest
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return nil, fmt.Errorf("store: pack %s of %s: %w", id, repo, err)
	}
	chunks, err := s.kvAPI().Get(ctx, hostedKey(repo, "chunks", id)+"/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision))
	if err != nil {
		return nil, mapErr(err)
	}
	if len(chunks.Kvs) != m.Chunks {
		return nil, fmt.Errorf("store: pack %s of %s has %d of its %d chunks", id, repo, len(chunks.Kvs), m.Chunks)
	}
	pack := make([]byte, 0, m.Size)
	for _, kv := range chunks.Kvs { // keys sort in chunk order
		pack = append(pack, kv.Value...)
	}
	sum := sha256.Sum256(pack)
	if hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, fmt.Errorf("store: pack %s of %s does not match its digest", id, repo)
	}
	return pack, nil
}

// SwapHostedRef moves ref of repo from old to new, where "" is absent
// (new "" deletes it), if it is still old. It reports false when it was
// not: another server moved it first.
func (s *Store) SwapHostedRef(ctx context.Context, repo, ref, old, new string) (bool, error) {
	key := hostedKey(repo, "refs", ref)
	cond := clientv3.Compare(clientv3.Value(key), "=", old)
	if old == "" {
		cond = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	op := clientv3.OpPut(key, new)
	if new == "" {
		op = clientv3.OpDelete(key)
	}
	resp, err := s.kvAPI().Txn(ctx).If(cond).Then(op).Commit()
	if err != nil {
		return false, mapErr(err)
	}
	return resp.Succeeded, nil
}

// HostedState reads repo's packs and refs at one revision.
func (s *Store) HostedState(ctx context.Context, repo string) (HostedState, error) {
	packs, err := s.kvAPI().Get(ctx, hostedKey(repo, "packs")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return HostedState{}, mapErr(err)
	}
	rev := packs.Header.Revision
	refs, err := s.kvAPI().Get(ctx, hostedKey(repo, "refs")+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return HostedState{}, mapErr(err)
	}
	st := HostedState{Refs: map[string]string{}, Revision: rev}
	for _, kv := range packs.Kvs {
		st.Packs = append(st.Packs, strings.TrimPrefix(string(kv.Key), hostedKey(repo, "packs")+"/"))
	}
	for _, kv := range refs.Kvs {
		st.Refs[strings.TrimPrefix(string(kv.Key), hostedKey(repo, "refs")+"/")] = string(kv.Value)
	}
	return st, nil
}

// WatchHosted streams the changes to repo's record from revision fromRev
// (0: from now), as Watch does.
func (s *Store) WatchHosted(ctx context.Context, repo string, fromRev int64) <-chan Event {
	return s.Watch(ctx, hostedKey(repo), fromRev)
}
