package gitserver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/revlist"
)

// packWindow is how many objects the pack encoder compares for deltas.
const packWindow = 10

// maxWants and maxHaves bound one fetch request.
const (
	maxWants = 10000
	maxHaves = 100000
)

// uploadRequest is one stateless round of a fetch.
type uploadRequest struct {
	wants []plumbing.Hash
	caps  map[string]bool
	haves []plumbing.Hash
	// done says the client wants the pack now; without it, the round
	// only negotiates.
	done bool
}

// parseUploadRequest reads "want" lines (the first with capabilities), a
// flush, "have" lines, then a flush or "done".
func parseUploadRequest(r io.Reader) (*uploadRequest, error) {
	pr := &pktReader{r: r}
	req := &uploadRequest{caps: map[string]bool{}}
	for {
		line, flush, err := pr.next()
		if err != nil {
			return nil, fmt.Errorf("read wants: %w", err)
		}
		if flush {
			break
		}
		s := strings.TrimSuffix(string(line), "\n")
		h, ok := strings.CutPrefix(s, "want ")
		if !ok {
			// shallow, deepen and filter are never advertised.
			return nil, fmt.Errorf("unexpected %q", firstWord(s))
		}
		hash, caps, _ := strings.Cut(h, " ")
		if len(req.wants) == 0 {
			for _, c := range strings.Fields(caps) {
				req.caps[c] = true
			}
		}
		id, ok := parseHash(hash)
		if !ok {
			return nil, errors.New("malformed want")
		}
		if len(req.wants) == maxWants {
			return nil, fmt.Errorf("more than %d wants", maxWants)
		}
		req.wants = append(req.wants, id)
	}
	for {
		line, flush, err := pr.next()
		if errors.Is(err, io.EOF) || flush {
			return req, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read haves: %w", err)
		}
		s := strings.TrimSuffix(string(line), "\n")
		if s == "done" {
			req.done = true
			return req, nil
		}
		h, ok := strings.CutPrefix(s, "have ")
		id, valid := parseHash(h)
		if !ok || !valid {
			return nil, fmt.Errorf("unexpected %q", firstWord(s))
		}
		if len(req.haves) == maxHaves {
			return nil, fmt.Errorf("more than %d haves", maxHaves)
		}
		req.haves = append(req.haves, id)
	}
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	if len(w) > 32 {
		w = w[:32]
	}
	return w
}

// parseHash parses 40 lower-case hex digits.
func parseHash(s string) (plumbing.Hash, bool) {
	if len(s) != 40 {
		return plumbing.ZeroHash, false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return plumbing.ZeroHash, false
		}
	}
	return plumbing.NewHash(s), true
}

// uploadPack answers one round of a fetch, as git's upload-pack does with
// multi_ack_detailed in stateless RPC: "ACK <have> common" for every have
// the repository holds; without "done", a NAK ends the round; with it,
// "ACK <last common>" (or NAK when there is none) and the pack of what
// the wants reach and the common haves do not.
func (s *Server) uploadPack(w http.ResponseWriter, r *http.Request, rp *repo, body io.Reader) {
	start := time.Now()
	req, err := parseUploadRequest(body)
	if err != nil {
		http.Error(w, "bad upload-pack request: "+err.Error(), http.StatusBadRequest)
		return
	}
	st := open(rp.Dir)
	defer st.Close()
	ad, err := readRefs(st)
	if err != nil {
		s.log.Warn("read refs", logKeyRepo, rp.name, logKeyErr, err)
		http.Error(w, "cannot read the repository", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
	out := newStreamWriter(w)
	tips := ad.tips()
	for _, h := range req.wants {
		if !tips[h] {
			// Only advertised tips may be wanted: anything else could be
			// an object no ref reaches any more.
			_ = out.write(pkt(nil, "ERR upload-pack: not our ref "+h.String()+"\n"))
			return
		}
	}
	var common []plumbing.Hash
	var b []byte
	for _, h := range req.haves {
		if st.HasEncodedObject(h) == nil {
			common = append(common, h)
			b = pkt(b, "ACK "+h.String()+" common\n")
		}
	}
	if !req.done {
		_ = out.write(pkt(b, "NAK\n"))
		return
	}
	if len(common) > 0 {
		b = pkt(b, "ACK "+common[len(common)-1].String()+"\n")
	} else {
		b = pkt(b, "NAK\n")
	}
	if err := out.write(b); err != nil {
		return
	}
	sideband := req.caps["side-band-64k"]
	fail := func(msg string) {
		s.log.Warn("upload-pack", logKeyRepo, rp.name, logKeyErr, msg)
		if sideband {
			_ = out.band(bandError, []byte("upload-pack: "+msg+"\n"))
			return
		}
		_ = out.write(pkt(nil, "ERR upload-pack: "+msg+"\n"))
	}
	objs, err := revlist.Objects(st, req.wants, common)
	if err != nil {
		fail("cannot list objects: " + err.Error())
		return
	}
	var dst io.Writer = out
	if sideband {
		dst = bandWriter{s: out, ch: bandData}
	}
	// The encoder writes small pieces; send them in full packets.
	bw := bufio.NewWriterSize(dst, maxBandPayload)
	enc := packfile.NewEncoder(bw, st, !req.caps["ofs-delta"])
	if _, err := enc.Encode(objs, packWindow); err != nil {
		fail("cannot encode the pack: " + err.Error())
		return
	}
	if err := bw.Flush(); err != nil {
		return
	}
	if sideband {
		_ = out.write([]byte(flushPkt))
	}
	s.log.Debug("served fetch", logKeyRepo, rp.name, logKeyObjects, len(objs), logKeyMS, time.Since(start).Milliseconds())
}
