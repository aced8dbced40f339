package gitserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/revlist"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Bounds of one push's commands and options.
const (
	maxCommands   = 1000
	maxOptions    = 100
	maxReasonLen  = 200
	commandFields = 3
)

// pushRequest is a receive-pack request's header: the commands, the
// capabilities the client chose, and the push options.
type pushRequest struct {
	updates []Update
	caps    map[string]bool
	options []string
}

// parseCommands reads "old new ref" lines (the first with capabilities
// after a NUL) up to a flush, then, when the client chose push-options,
// the options up to a flush. What is left in pr's reader is the pack.
func parseCommands(pr *pktReader) (*pushRequest, error) {
	req := &pushRequest{caps: map[string]bool{}}
	for first := true; ; first = false {
		line, flush, err := pr.next()
		if errors.Is(err, io.EOF) && first {
			return req, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read commands: %w", err)
		}
		if flush {
			break
		}
		s := strings.TrimSuffix(string(line), "\n")
		if first {
			var caps string
			s, caps, _ = strings.Cut(s, "\x00")
			for _, c := range strings.Fields(caps) {
				req.caps[c] = true
			}
		}
		f := strings.Fields(s)
		if len(f) != commandFields {
			// "shallow" lines come from shallow clones, which are not
			// served.
			return nil, fmt.Errorf("unexpected %q", firstWord(s))
		}
		old, ok1 := parseHash(f[0])
		nw, ok2 := parseHash(f[1])
		if !ok1 || !ok2 {
			return nil, errors.New("malformed command")
		}
		if len(req.updates) == maxCommands {
			return nil, fmt.Errorf("more than %d commands", maxCommands)
		}
		req.updates = append(req.updates, Update{Name: plumbing.ReferenceName(f[2]), Old: old, New: nw})
	}
	if !req.caps["push-options"] || len(req.updates) == 0 {
		return req, nil
	}
	for {
		line, flush, err := pr.next()
		if err != nil {
			return nil, fmt.Errorf("read push options: %w", err)
		}
		if flush {
			return req, nil
		}
		if len(req.options) == maxOptions {
			return nil, fmt.Errorf("more than %d push options", maxOptions)
		}
		req.options = append(req.options, strings.TrimSuffix(string(line), "\n"))
	}
}

// receivePack stores a push's pack, then checks and moves its refs one
// by one under the repository's push lock, and reports.
func (s *Server) receivePack(w http.ResponseWriter, r *http.Request, rp *repo, user string, body io.Reader) {
	start := time.Now()
	ctx := r.Context()
	pr := &pktReader{r: body}
	req, err := parseCommands(pr)
	if err != nil {
		http.Error(w, "bad receive-pack request: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
	if len(req.updates) == 0 {
		// git probes with an empty request before a large push.
		return
	}
	out := newStreamWriter(w)
	progress := &Progress{}
	if req.caps["side-band-64k"] {
		progress.write = out.band
	}
	results := make([]error, len(req.updates))
	pack := limitBody(pr.r, s.cfg.MaxPushBytes)
	var packCopy *os.File
	if rp.Shared != nil {
		// The pack goes to the shared record too, once a ref it brings
		// is accepted; keep it meanwhile.
		f, err := os.CreateTemp(rp.Dir, ".push-")
		if err != nil {
			http.Error(w, "cannot store the push", http.StatusInternalServerError)
			return
		}
		defer os.Remove(f.Name())
		defer f.Close()
		packCopy = f
		pack = io.TeeReader(pack, f)
	}
	unpackErr := s.unpack(rp.Dir, req.updates, pack)
	if unpackErr != nil {
		s.log.Warn("unpack push", logKeyRepo, rp.name, logKeyUser, user, logKeyErr, unpackErr)
		for i := range results {
			results[i] = errors.New("unpacker error")
		}
		s.report(out, req, unpackErr, results)
		return
	}
	st := open(rp.Dir)
	defer st.Close()
	p := &Push{Repo: rp.name, User: user, Options: req.options, Storage: st, Progress: progress, Start: start}
	for i, u := range req.updates {
		results[i] = checkObjects(st, u)
	}
	atomic := req.caps["atomic"]
	failAtomic := func() {
		if !atomic || !anyFailed(results) {
			return
		}
		for i := range results {
			if results[i] == nil {
				results[i] = ErrAtomic
			}
		}
	}
	failAtomic()
	var moved []int
	func() {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		kept := make([]bool, len(req.updates))
		for i, u := range req.updates {
			if results[i] != nil {
				continue
			}
			cur, err := refValue(st, u.Name)
			switch {
			case err != nil:
				results[i] = err
			case cur != u.Old:
				progress.Printf("%s moved while you pushed: fetch, merge or rebase, and push again", u.Name.Short())
				results[i] = ErrFetchFirst
			case rp.Hooks != nil:
				err := rp.Hooks.Check(ctx, p, u)
				kept[i] = errors.Is(err, ErrKeep)
				if !kept[i] {
					results[i] = err
				}
			}
		}
		failAtomic()
		published := false
		for i, u := range req.updates {
			if results[i] != nil || kept[i] {
				continue
			}
			if rp.Shared != nil {
				if err := s.publish(ctx, rp, packCopy, &published, u); err != nil {
					results[i] = err
					continue
				}
			}
			if err := setRef(rp.Dir, st, u.Name, u.New); err != nil {
				results[i] = fmt.Errorf("cannot update the ref: %w", err)
				continue
			}
			moved = append(moved, i)
		}
		if rp.Hooks == nil {
			return
		}
		for _, i := range moved {
			results[i] = rp.Hooks.Apply(ctx, p, req.updates[i])
		}
	}()
	if rp.Hooks != nil {
		for _, i := range moved {
			if results[i] == nil {
				results[i] = rp.Hooks.Follow(ctx, p, req.updates[i])
			}
		}
	}
	for i, u := range req.updates {
		s.log.Info("push", logKeyRepo, rp.name, logKeyUser, user, logKeyRef, u.Name.String(), logKeyOld, u.Old.String(),
			logKeyNew, u.New.String(), logKeyResult, resultText(results[i]), logKeyMS, time.Since(start).Milliseconds())
	}
	s.report(out, req, nil, results)
}

// publish records update u in rp's shared record: the push's pack first
// (once per push), then the ref, which moves only if no other server
// moved it since the client looked; else ErrFetchFirst.
func (s *Server) publish(ctx context.Context, rp *repo, pack *os.File, published *bool, u Update) error {
	if !*published {
		if fi, err := pack.Stat(); err == nil && fi.Size() > 0 {
			if _, err := pack.Seek(0, io.SeekStart); err != nil {
				return err
			}
			id, err := rp.Shared.PutPack(ctx, rp.name, pack)
			if err != nil {
				s.log.Warn("record push", logKeyRepo, rp.name, logKeyErr, err)
				return ErrShared
			}
			if err := markApplied(rp.Dir, id); err != nil {
				return err
			}
		}
		*published = true
	}
	old, nw := "", ""
	if !u.Old.IsZero() {
		old = u.Old.String()
	}
	if !u.IsDelete() {
		nw = u.New.String()
	}
	ok, err := rp.Shared.SwapRef(ctx, rp.name, u.Name.String(), old, nw)
	if err != nil {
		s.log.Warn("record push", logKeyRepo, rp.name, logKeyErr, err)
		return ErrShared
	}
	if !ok {
		return ErrFetchFirst
	}
	return nil
}

// unpack stores the pack that follows the commands, when any command
// needs one (deletes alone send none).
func (s *Server) unpack(dir string, updates []Update, pack io.Reader) error {
	need := false
	for _, u := range updates {
		need = need || !u.IsDelete()
	}
	if !need {
		return nil
	}
	return storePack(dir, pack)
}

// storePack stores a pack's objects in the repository in dir, durably.
func storePack(dir string, pack io.Reader) (err error) {
	st := open(dir)
	defer st.Close()
	pw, err := st.PackfileWriter()
	if err != nil {
		return err
	}
	// Close parses and indexes what was written; a bad pack fails there
	// and is removed.
	if _, err = io.Copy(pw, pack); err != nil {
		_ = pw.Close()
		return err
	}
	if err := pw.Close(); err != nil {
		return err
	}
	// The ref that will name these objects is written durably (setRef);
	// so must they be, first.
	return syncPacks(filepath.Join(dir, "objects", "pack"))
}

// syncPacks flushes the pack files in dir, and dir itself, to disk. Packs
// already on disk cost a syscall each and write nothing.
func syncPacks(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "pack-") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// checkObjects checks, before any lock, that an update names a ref a
// client may push and that its new tip is complete: every object it
// reaches and the existing refs do not is in the repository. Branches
// must point at commits.
func checkObjects(st *filesystem.Storage, u Update) error {
	if !servedRef(u.Name) {
		return ErrRefName
	}
	if u.IsDelete() {
		return nil
	}
	if u.Name.IsBranch() {
		if _, err := object.GetCommit(st, u.New); err != nil {
			if errors.Is(err, plumbing.ErrObjectNotFound) {
				return ErrMissingObjects
			}
			return ErrNotCommit
		}
	}
	ad, err := readRefs(st)
	if err != nil {
		return err
	}
	var have []plumbing.Hash
	for _, r := range ad.refs {
		have = append(have, r.hash)
	}
	// The connectivity check git does with rev-list --objects NEW
	// --not --all: a pack may omit what the client thought the server
	// had, or a client may lie.
	if _, err := revlist.Objects(st, []plumbing.Hash{u.New}, have); err != nil {
		return ErrMissingObjects
	}
	return nil
}

func anyFailed(results []error) bool {
	for _, err := range results {
		if err != nil {
			return true
		}
	}
	return false
}

// report writes the report-status: "unpack ok" (or the unpack error),
// then "ok REF" or "ng REF REASON" per command, inside sideband channel 1
// when the client chose a sideband.
func (s *Server) report(out *streamWriter, req *pushRequest, unpackErr error, results []error) {
	if !req.caps["report-status"] {
		if req.caps["side-band-64k"] {
			_ = out.write([]byte(flushPkt))
		}
		return
	}
	var b []byte
	if unpackErr != nil {
		b = pkt(b, "unpack "+reason(unpackErr)+"\n")
	} else {
		b = pkt(b, "unpack ok\n")
	}
	for i, u := range req.updates {
		if results[i] == nil {
			b = pkt(b, "ok "+u.Name.String()+"\n")
		} else {
			b = pkt(b, "ng "+u.Name.String()+" "+reason(results[i])+"\n")
		}
	}
	b = append(b, flushPkt...)
	if !req.caps["side-band-64k"] {
		_ = out.write(b)
		return
	}
	if err := out.band(bandData, b); err == nil {
		_ = out.write([]byte(flushPkt))
	}
}

// reason is err's text on one short line.
func reason(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > maxReasonLen {
		s = strings.ToValidUTF8(s[:maxReasonLen], "") + "…"
	}
	return s
}

func resultText(err error) string {
	if err == nil {
		return "ok"
	}
	return reason(err)
}

// limitBody fails a read past n bytes, where io.LimitReader would end
// quietly and leave a truncated pack to be misreported.
func limitBody(r io.Reader, n int64) io.Reader { return &limitedReader{r: r, left: n} }

type limitedReader struct {
	r    io.Reader
	left int64
}

var errTooLarge = errors.New("push too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Exactly n bytes is fine; one more is not.
		var one [1]byte
		if n, err := io.ReadFull(l.r, one[:]); n == 0 {
			return 0, err
		}
		return 0, errTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}
