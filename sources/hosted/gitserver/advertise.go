package gitserver

import (
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// agent is what the server calls itself in the capability lists.
const agent = "agent=kiln-gitserver/1"

// Services, as named in URLs and content types.
const (
	serviceUploadPack  = "git-upload-pack"
	serviceReceivePack = "git-receive-pack"
)

// Capabilities each service offers (gitprotocol-capabilities(5)).
var (
	uploadCaps = []string{"multi_ack_detailed", "side-band-64k", "ofs-delta", "no-progress", agent}
	// no-thin: go-git's pack parser does not complete thin packs with
	// objects from the repository, so clients must send whole ones.
	receiveCaps = []string{"report-status", "delete-refs", "side-band-64k", "atomic", "ofs-delta", "push-options", "no-thin", agent}
)

// maxPeel bounds a chain of tags pointing at tags.
const maxPeel = 8

// advertisement is the ref advertisement of service for ad, as the
// smart HTTP info/refs answer: the service line, a flush, the refs (the
// first carrying the capabilities), a flush.
func advertisement(service string, ad *advertised) []byte {
	caps := uploadCaps
	if service == serviceReceivePack {
		caps = receiveCaps
	}
	capList := strings.Join(caps, " ")
	if service == serviceUploadPack && ad.head != nil {
		// clone checks out the branch HEAD names.
		capList += " symref=HEAD:" + ad.headRef.String()
	}
	b := pkt(nil, "# service="+service+"\n")
	b = append(b, flushPkt...)
	first := true
	line := func(h plumbing.Hash, name string) {
		if first {
			b = pkt(b, h.String()+" "+name+"\x00"+capList+"\n")
			first = false
			return
		}
		b = pkt(b, h.String()+" "+name+"\n")
	}
	// receive-pack does not advertise HEAD: it is not pushed to.
	if ad.head != nil && service == serviceUploadPack {
		line(*ad.head, "HEAD")
	}
	for _, r := range ad.refs {
		line(r.hash, r.name)
	}
	if first {
		// An empty repository still says what it can do.
		line(plumbing.ZeroHash, "capabilities^{}")
	}
	return append(b, flushPkt...)
}

// peel follows annotated tags from h to the object they tag.
func peel(st *filesystem.Storage, h plumbing.Hash) (plumbing.Hash, error) {
	for range maxPeel {
		t, err := object.GetTag(st, h)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if t.TargetType != plumbing.TagObject {
			return t.Target, nil
		}
		h = t.Target
	}
	return plumbing.ZeroHash, fmt.Errorf("tag %s: more than %d nested tags", h, maxPeel)
}
