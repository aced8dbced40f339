package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/server"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"golang.org/x/crypto/ssh"
)

const (
	// fetchTimeout bounds one fetch: the ref advertisement and the pack.
	fetchTimeout = 5 * time.Minute
	// sshDialTimeout bounds the TCP connect of an ssh fetch. go-git
	// gives the ssh handshake itself no deadline and no context.
	sshDialTimeout = 30 * time.Second
	// maxPackBytes bounds what one fetch may download. A shallow fetch of
	// a tree within the snapshot limits is far smaller; a full fetch
	// (file://, or an exact commit the server will not serve directly)
	// carries history too.
	maxPackBytes = 512 << 20
	// maxAdvertBytes bounds an http ref advertisement (every ref of the
	// remote with its hash, ~60 bytes each).
	maxAdvertBytes = 64 << 20
	// maxErrorBodyBytes bounds an http error body; go-git reads it whole
	// into the error.
	maxErrorBodyBytes = 4 << 10
	// maxHaves bounds the local refs offered as haves.
	maxHaves = 64
	// maxPeel bounds a chain of tags pointing at tags.
	maxPeel = 8
)

// target is what a fetch resolved Config.Ref to.
type target struct {
	// name is the ref followed (refs/heads/X or refs/tags/X), or "" for an
	// exact commit. It is always a valid ref name.
	name plumbing.ReferenceName
	// hash is what name points at: a commit, or an annotated tag.
	hash plumbing.Hash
	// commit is hash peeled to a commit.
	commit plumbing.Hash
}

// revision is the Snapshot.Revision of t: "<short ref>@sha1:<commit>",
// or "sha1:<commit>" for an exact commit.
func (t target) revision() string {
	if t.name == "" {
		return "sha1:" + t.commit.String()
	}
	return t.name.Short() + "@sha1:" + t.commit.String()
}

// fetch brings the commit Config.Ref names into the local repository and
// returns it. Its errors are redacted *fetchErrors.
func (s *Source) fetch(ctx context.Context) (target, error) {
	if s.ref.kind == refCommit && s.has(s.ref.hash) {
		// A commit never changes: once here, there is nothing to fetch.
		t, err := s.peel(target{hash: s.ref.hash})
		if err != nil {
			return target{}, newFetchError(s.url, err, newRedactor(""))
		}
		return t, nil
	}
	auth, rd, err := s.auth()
	if err != nil {
		return target{}, newFetchError(s.url, err, rd)
	}
	t, err := s.fetchWith(ctx, auth)
	if err != nil {
		return target{}, newFetchError(s.url, err, rd)
	}
	return t, nil
}

func (s *Source) fetchWith(ctx context.Context, auth transport.AuthMethod) (_ target, err error) {
	sess, err := s.transport.NewUploadPackSession(s.ep, auth)
	if err != nil {
		return target{}, err
	}
	defer func() {
		if cerr := sess.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return target{}, err
	}
	t, wants, shallow, err := s.resolve(ar)
	if err != nil {
		return target{}, err
	}
	if !s.has(t.hash) {
		if err := s.fetchPack(ctx, sess, ar, wants, shallow); err != nil {
			return target{}, err
		}
		s.packs++
		if !s.has(t.hash) {
			return target{}, fmt.Errorf("%w: commit %s is not on the remote", ErrRefNotFound, t.hash)
		}
	}
	if t.name != "" {
		// t.name is a valid ref name (resolve checked it), and the
		// storage is rooted at the clone with BoundOS, so this write
		// cannot land outside refs/. The ref is what the next fetch
		// offers as a have.
		if cur, err := s.st.Reference(t.name); err != nil || cur.Hash() != t.hash {
			if err := s.st.SetReference(plumbing.NewHashReference(t.name, t.hash)); err != nil {
				return target{}, fmt.Errorf("update %s: %w", t.name, err)
			}
		}
	}
	return s.peel(t)
}

// resolve picks the ref to follow from the remote's advertisement and
// says what to ask for: the ref's hash, shallow; or, for an exact commit
// the server will not hand out by hash, every branch and tag in full.
func (s *Source) resolve(ar *packp.AdvRefs) (t target, wants []plumbing.Hash, shallow bool, err error) {
	lookup := func(n plumbing.ReferenceName) (target, bool) {
		h, ok := ar.References[n.String()]
		return target{name: n, hash: h}, ok && !h.IsZero()
	}
	switch s.ref.kind {
	case refHead:
		n, err := headBranch(ar)
		if err != nil {
			return target{}, nil, false, err
		}
		t, _ = lookup(n)
	case refAuto, refBranch, refTag:
		var found bool
		if s.ref.kind != refTag {
			t, found = lookup(plumbing.NewBranchReferenceName(s.ref.name))
		}
		if !found && s.ref.kind != refBranch {
			t, found = lookup(plumbing.NewTagReferenceName(s.ref.name))
		}
		if !found {
			return target{}, nil, false, fmt.Errorf("%w: no branch or tag %q on the remote", ErrRefNotFound, s.ref.name)
		}
	case refCommit:
		t = target{hash: s.ref.hash}
		if advertises(ar, t.hash) || ar.Capabilities.Supports(capability.AllowReachableSHA1InWant) {
			return t, []plumbing.Hash{t.hash}, true, nil
		}
		// The server only hands out ref tips: fetch them all, history
		// included, and look for the commit among them.
		for n, h := range ar.References {
			rn := plumbing.ReferenceName(n)
			if (rn.IsBranch() || rn.IsTag()) && !h.IsZero() && !slices.Contains(wants, h) {
				wants = append(wants, h)
			}
		}
		if len(wants) == 0 {
			return target{}, nil, false, fmt.Errorf("%w: commit %s is not on the remote", ErrRefNotFound, t.hash)
		}
		return t, wants, false, nil
	}
	return t, []plumbing.Hash{t.hash}, true, nil
}

// headBranch is the branch the remote HEAD points at: the symref the
// server announces, else DefaultBranch, else the first branch (by name)
// with HEAD's hash. Names come from the server, so each is validated
// before use.
func headBranch(ar *packp.AdvRefs) (plumbing.ReferenceName, error) {
	has := func(n plumbing.ReferenceName) bool {
		h, ok := ar.References[n.String()]
		return ok && !h.IsZero() && n.IsBranch() && n.Validate() == nil
	}
	for _, sr := range ar.Capabilities.Get(capability.SymRef) {
		from, to, ok := strings.Cut(sr, ":")
		if ok && from == "HEAD" && has(plumbing.ReferenceName(to)) {
			return plumbing.ReferenceName(to), nil
		}
	}
	if def := plumbing.NewBranchReferenceName(DefaultBranch); has(def) {
		return def, nil
	}
	if ar.Head != nil {
		var names []string
		for n, h := range ar.References {
			if h == *ar.Head && has(plumbing.ReferenceName(n)) {
				names = append(names, n)
			}
		}
		if len(names) > 0 {
			slices.Sort(names)
			return plumbing.ReferenceName(names[0]), nil
		}
	}
	return "", fmt.Errorf("%w: the remote HEAD names no branch and there is no %q branch; set a ref", ErrRefNotFound, DefaultBranch)
}

// advertises reports whether h is the tip, or a peeled tag, of a ref the
// remote advertised; a server always hands those out.
func advertises(ar *packp.AdvRefs, h plumbing.Hash) bool {
	for _, v := range ar.References {
		if v == h {
			return true
		}
	}
	for _, v := range ar.Peeled {
		if v == h {
			return true
		}
	}
	return false
}

// fetchPack asks for wants, offering the local refs as haves, and stores
// the pack. shallow asks for depth 1 where the server supports it.
func (s *Source) fetchPack(ctx context.Context, sess transport.UploadPackSession, ar *packp.AdvRefs, wants []plumbing.Hash, shallow bool) (err error) {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	req.Wants = wants
	if ar.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return err
		}
	}
	deepen := shallow && ar.Capabilities.Supports(capability.Shallow)
	if deepen {
		if err := req.Capabilities.Set(capability.Shallow); err != nil {
			return err
		}
		req.Depth = packp.DepthCommits(1)
		if req.Shallows, err = s.st.Shallow(); err != nil {
			return err
		}
	}
	if req.Haves, err = s.haves(); err != nil {
		return err
	}
	resp, err := sess.UploadPack(ctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil
	}
	if err != nil {
		return err
	}
	// Closing the response is what stops go-git's in-process server
	// (file://) from writing the rest of the pack into a pipe no one
	// reads.
	defer func() {
		if cerr := resp.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if deepen && len(resp.Shallows) > 0 {
		old, err := s.st.Shallow()
		if err != nil {
			return err
		}
		for _, h := range resp.Shallows {
			if !slices.Contains(old, h) {
				old = append(old, h)
			}
		}
		if err := s.st.SetShallow(old); err != nil {
			return err
		}
	}
	var r io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		r = sideband.NewDemuxer(sideband.Sideband64k, r)
	case req.Capabilities.Supports(capability.Sideband):
		r = sideband.NewDemuxer(sideband.Sideband, r)
	}
	return packfile.UpdateObjectStorage(s.st, &limitedReader{r: r, left: maxPackBytes + 1, err: ErrPackTooLarge})
}

// haves are the commits the local refs point at.
func (s *Source) haves() ([]plumbing.Hash, error) {
	iter, err := s.st.IterReferences()
	if err != nil {
		return nil, err
	}
	defer iter.Close()
	var hs []plumbing.Hash
	err = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference && s.has(r.Hash()) && !slices.Contains(hs, r.Hash()) {
			hs = append(hs, r.Hash())
		}
		if len(hs) == maxHaves {
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return hs, nil
}

var errStop = errors.New("stop")

// peel follows t.hash through annotated tags to a commit.
func (s *Source) peel(t target) (target, error) {
	h := t.hash
	for range maxPeel {
		if err := s.checkObjectSize(h); err != nil {
			return target{}, err
		}
		obj, err := s.st.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return target{}, fmt.Errorf("read %s: %w", h, err)
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			t.commit = h
			return t, nil
		case plumbing.TagObject:
			tag, err := object.DecodeTag(s.st, obj)
			if err != nil {
				return target{}, fmt.Errorf("tag %s: %w", h, err)
			}
			h = tag.Target
		default:
			return target{}, fmt.Errorf("%w: %s points at a %s, not a commit", ErrRefNotFound, refLabel(t), obj.Type())
		}
	}
	return target{}, fmt.Errorf("%w: %s: more than %d nested tags", ErrRefNotFound, refLabel(t), maxPeel)
}

func refLabel(t target) string {
	if t.name == "" {
		return t.hash.String()
	}
	return t.name.Short()
}

// checkObjectSize refuses a commit, tag or tree object too large to
// decode in memory; git's own objects of these kinds are tiny.
func (s *Source) checkObjectSize(h plumbing.Hash) error {
	return checkObjectSize(s.st, h)
}

func checkObjectSize(st *filesystem.Storage, h plumbing.Hash) error {
	n, err := st.EncodedObjectSize(h)
	if err != nil {
		return fmt.Errorf("%w: object %s: %w", ErrInvalidTree, h, err)
	}
	if n > maxObjectBytes {
		return fmt.Errorf("%w: object %s is %d bytes, over the %d-byte limit", ErrInvalidTree, h, n, maxObjectBytes)
	}
	return nil
}

func (s *Source) has(h plumbing.Hash) bool {
	return s.st.HasEncodedObject(h) == nil
}

// limitedReader is io.LimitReader that fails instead of ending early.
type limitedReader struct {
	r    io.Reader
	left int64 // the limit plus one
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left <= 0 {
		return n, l.err
	}
	return n, err
}

// limitedBody bounds an http response body; with err == nil it ends
// quietly at the limit instead of failing.
type limitedBody struct {
	limitedReader
	c io.Closer
}

func (b *limitedBody) Close() error { return b.c.Close() }

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.limitedReader.Read(p)
	if err == nil && b.left <= 0 {
		err = io.EOF
	}
	return n, err
}

// boundedTransport bounds the bodies go-git reads whole: error bodies and
// the ref advertisement (GET). Pack bodies (POST) are bounded by
// fetchPack.
type boundedTransport struct{ rt http.RoundTripper }

func (b boundedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		resp.Body = &limitedBody{limitedReader{r: resp.Body, left: maxErrorBodyBytes}, resp.Body}
	case req.Method == http.MethodGet:
		resp.Body = &limitedBody{limitedReader{r: resp.Body, left: maxAdvertBytes + 1,
			err: fmt.Errorf("ref advertisement over %d bytes", maxAdvertBytes)}, resp.Body}
	}
	return resp, nil
}

// sshKeyAuth adds a dial timeout to go-git's public-key auth: go-git takes
// the ssh.ClientConfig from the auth method, and overriding it through
// ssh.NewClient would replace every field, not just the timeout.
type sshKeyAuth struct{ *gitssh.PublicKeys }

func (a sshKeyAuth) ClientConfig() (*ssh.ClientConfig, error) {
	c, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	c.Timeout = sshDialTimeout
	return c, nil
}

// localTransport serves file:// URLs in process with go-git's own server,
// so that no git binary is needed (go-git's file transport runs
// git-upload-pack). The repository is opened through BoundOS, so a
// symlink inside it cannot make the server read outside it.
type localTransport struct{}

func (localTransport) NewUploadPackSession(ep *transport.Endpoint, _ transport.AuthMethod) (transport.UploadPackSession, error) {
	fs := osfs.New(ep.Path, osfs.WithBoundOS())
	if fi, err := fs.Lstat(".git"); err == nil && fi.IsDir() {
		sub, err := fs.Chroot(".git")
		if err != nil {
			return nil, err
		}
		fs = sub
	}
	if fi, err := fs.Stat("objects"); err != nil || !fi.IsDir() {
		return nil, transport.ErrRepositoryNotFound
	}
	st := filesystem.NewStorage(fs, cache.NewObjectLRUDefault())
	key := ep.String()
	sess, err := server.NewClient(server.MapLoader{key: st}).NewUploadPackSession(ep, nil)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return &localSession{UploadPackSession: sess, st: st}, nil
}

func (localTransport) NewReceivePackSession(*transport.Endpoint, transport.AuthMethod) (transport.ReceivePackSession, error) {
	return nil, errors.New("push is not supported")
}

type localSession struct {
	transport.UploadPackSession
	st *filesystem.Storage
}

// UploadPack drops the haves the repository lacks (after a force-push and
// gc, say): go-git's server fails on an unknown have where git ignores it.
func (l *localSession) UploadPack(ctx context.Context, req *packp.UploadPackRequest) (*packp.UploadPackResponse, error) {
	haves := req.Haves[:0:0]
	for _, h := range req.Haves {
		if l.st.HasEncodedObject(h) == nil {
			haves = append(haves, h)
		}
	}
	req.Haves = haves
	return l.UploadPackSession.UploadPack(ctx, req)
}

func (l *localSession) Close() error {
	err := l.UploadPackSession.Close()
	if cerr := l.st.Close(); err == nil {
		err = cerr
	}
	return err
}
