package gitserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Shared is the record of a repository that every server of a cluster
// shares (kiln's datastore). With it, a push is recorded there before its
// ref moves, the ref moves only if no other server moved it first, and
// each server's copy of the repository follows the record (Replicate):
// any server can take a push, and whichever leads the reconciler has it.
type Shared interface {
	// PutPack stores a pushed pack and returns its id.
	PutPack(ctx context.Context, repo string, pack io.Reader) (string, error)
	// Pack reads a stored pack.
	Pack(ctx context.Context, repo, id string) ([]byte, error)
	// SwapRef moves ref from old to new ("" is absent) if it is still
	// old, and reports whether it did.
	SwapRef(ctx context.Context, repo, ref, old, new string) (bool, error)
	// State is the record: the pack ids, oldest first, and the refs.
	State(ctx context.Context, repo string) (SharedState, error)
	// Changes signals every change of the record until ctx is done; the
	// channel closes when the watch ends (the caller starts another).
	Changes(ctx context.Context, repo string, fromRevision int64) <-chan struct{}
}

// SharedState is a repository's record at one revision.
type SharedState struct {
	Packs    []string
	Refs     map[string]string
	Revision int64
}

// appliedFile lists, in the repository, the ids of the shared packs its
// objects hold, one a line.
const appliedFile = "kiln-shared-packs"

// replicateRetry is the pause after a failed round of replication.
const replicateRetry = time.Second

// Replicate makes every repository with a Shared record follow it until
// ctx is done: packs it lacks are stored, refs set to the record's. A
// repository whose record is empty while it holds refs (it was served
// before it was shared) publishes itself first. moved is called for each
// ref that replication moved. It returns when ctx is done.
func (s *Server) Replicate(ctx context.Context, moved func(repo string, ref plumbing.ReferenceName)) {
	done := make(chan struct{})
	n := 0
	for _, rp := range s.repos {
		if rp.Shared == nil {
			continue
		}
		n++
		go func() {
			defer func() { done <- struct{}{} }()
			s.replicate(ctx, rp, moved)
		}()
	}
	for range n {
		<-done
	}
}

func (s *Server) replicate(ctx context.Context, rp *repo, moved func(string, plumbing.ReferenceName)) {
	for ctx.Err() == nil {
		rev, err := s.follow(ctx, rp, moved)
		if err == nil {
			// Wait for the next change; a watch that ends (compaction,
			// lost leader) is followed by a full round again.
			for range rp.Shared.Changes(ctx, rp.name, rev+1) {
				if rev, err = s.follow(ctx, rp, moved); err != nil {
					break
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("replicate repository", logKeyRepo, rp.name, logKeyErr, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(replicateRetry):
		}
	}
}

// follow brings rp's copy to the record and returns the record's
// revision.
func (s *Server) follow(ctx context.Context, rp *repo, moved func(string, plumbing.ReferenceName)) (int64, error) {
	// The record is read under the push lock: a state read before a
	// push of this server moved a ref would move it back.
	rp.mu.Lock()
	defer rp.mu.Unlock()
	state, err := rp.Shared.State(ctx, rp.name)
	if err != nil {
		return 0, err
	}
	if len(state.Packs) == 0 && len(state.Refs) == 0 {
		seeded, err := s.seed(ctx, rp)
		if err != nil {
			return 0, err
		}
		if !seeded {
			return state.Revision, nil
		}
		if state, err = rp.Shared.State(ctx, rp.name); err != nil {
			return 0, err
		}
	}
	applied, err := readApplied(rp.Dir)
	if err != nil {
		return 0, err
	}
	for _, id := range state.Packs {
		if applied[id] {
			continue
		}
		pack, err := rp.Shared.Pack(ctx, rp.name, id)
		if err != nil {
			return 0, err
		}
		if err := storePack(rp.Dir, bytes.NewReader(pack)); err != nil {
			return 0, fmt.Errorf("pack %s: %w", id, err)
		}
		if err := markApplied(rp.Dir, id); err != nil {
			return 0, err
		}
	}
	st := open(rp.Dir)
	defer st.Close()
	local, err := readRefs(st)
	if err != nil {
		return 0, err
	}
	have := map[string]string{}
	for _, r := range local.refs {
		if !strings.HasSuffix(r.name, "^{}") {
			have[r.name] = r.hash.String()
		}
	}
	for name, h := range state.Refs {
		if have[name] == h {
			continue
		}
		ref := plumbing.ReferenceName(name)
		if err := setRef(rp.Dir, st, ref, plumbing.NewHash(h)); err != nil {
			return 0, fmt.Errorf("set %s: %w", name, err)
		}
		s.log.Info("replicated", logKeyRepo, rp.name, logKeyRef, name, logKeyNew, h)
		if moved != nil {
			moved(rp.name, ref)
		}
	}
	for name := range have {
		if _, ok := state.Refs[name]; ok {
			continue
		}
		ref := plumbing.ReferenceName(name)
		if err := setRef(rp.Dir, st, ref, plumbing.ZeroHash); err != nil {
			return 0, fmt.Errorf("remove %s: %w", name, err)
		}
		if moved != nil {
			moved(rp.name, ref)
		}
	}
	return state.Revision, nil
}

// seed publishes a repository that holds refs but has no record yet
// (it was served before it was shared): its packs, then its refs. It
// reports whether there was anything to publish. The caller holds the
// push lock.
func (s *Server) seed(ctx context.Context, rp *repo) (bool, error) {
	st := open(rp.Dir)
	ad, err := readRefs(st)
	st.Close()
	if err != nil || len(ad.refs) == 0 {
		return false, err
	}
	packDir := filepath.Join(rp.Dir, "objects", "pack")
	entries, err := os.ReadDir(packDir)
	if err != nil {
		return false, err
	}
	// Oldest first, as they were pushed: a pushed pack is thin, its
	// deltas may be against objects of an earlier one.
	type packFile struct {
		name string
		mod  time.Time
	}
	var packs []packFile
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pack") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return false, err
		}
		packs = append(packs, packFile{e.Name(), fi.ModTime()})
	}
	slices.SortStableFunc(packs, func(a, b packFile) int { return a.mod.Compare(b.mod) })
	for _, p := range packs {
		f, err := os.Open(filepath.Join(packDir, p.name))
		if err != nil {
			return false, err
		}
		id, err := rp.Shared.PutPack(ctx, rp.name, f)
		f.Close()
		if err != nil {
			return false, err
		}
		if err := markApplied(rp.Dir, id); err != nil {
			return false, err
		}
	}
	for _, r := range ad.refs {
		if strings.HasSuffix(r.name, "^{}") {
			continue
		}
		if _, err := rp.Shared.SwapRef(ctx, rp.name, r.name, "", r.hash.String()); err != nil {
			return false, err
		}
	}
	s.log.Info("published the repository to the shared record", logKeyRepo, rp.name, "refs", len(ad.refs))
	return true, nil
}

// readApplied reads the set of shared packs rp's objects hold.
func readApplied(dir string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, appliedFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	m := map[string]bool{}
	for _, id := range strings.Fields(string(b)) {
		m[id] = true
	}
	return m, nil
}

// markApplied records that the objects of pack id are stored, durably:
// a crash before it stores the pack again, which is harmless.
func markApplied(dir, id string) error {
	f, err := os.OpenFile(filepath.Join(dir, appliedFile), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
