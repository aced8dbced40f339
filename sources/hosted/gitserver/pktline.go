package gitserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// pkt-line framing (gitprotocol-common(5)): four hex digits of length,
// the length included, then the payload; "0000" is a flush.
const (
	// maxPktPayload is the largest payload of one pkt-line.
	maxPktPayload = 65520 - 4
	// maxBandPayload is the largest payload of one side-band-64k packet:
	// one byte goes to the band number.
	maxBandPayload = maxPktPayload - 1
)

// Sideband channels.
const (
	bandData     byte = 1
	bandProgress byte = 2
	bandError    byte = 3
)

var errBadPkt = errors.New("malformed pkt-line")

// pktReader reads pkt-lines from r without reading past the one asked
// for, so that what follows the last line (a pack) is left in r.
type pktReader struct {
	r   io.Reader
	hdr [4]byte
	buf [maxPktPayload]byte
}

// next returns the next payload, or flush true for a flush-pkt. The
// payload is valid until the next call.
func (p *pktReader) next() (payload []byte, flush bool, err error) {
	if _, err := io.ReadFull(p.r, p.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errBadPkt
		}
		return nil, false, err
	}
	n := 0
	for _, c := range p.hdr {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'f':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			v = c - 'A' + 10
		default:
			return nil, false, errBadPkt
		}
		n = n<<4 | int(v)
	}
	switch {
	case n == 0:
		return nil, true, nil
	case n < 4 || n-4 > maxPktPayload:
		// 0001-0003 are protocol v2's delimiters, which v0 never sends.
		return nil, false, errBadPkt
	}
	b := p.buf[:n-4]
	if _, err := io.ReadFull(p.r, b); err != nil {
		return nil, false, errBadPkt
	}
	return b, false, nil
}

// pkt appends one pkt-line holding s to b.
func pkt(b []byte, s string) []byte {
	b = fmt.Appendf(b, "%04x", len(s)+4)
	return append(b, s...)
}

// flushPkt is the flush-pkt.
const flushPkt = "0000"

// streamWriter writes a response in pieces, flushing each to the client
// at once: progress must reach it while the server works.
type streamWriter struct {
	mu  sync.Mutex
	w   io.Writer
	rc  *http.ResponseController
	err error
}

func newStreamWriter(w http.ResponseWriter) *streamWriter {
	return &streamWriter{w: w, rc: http.NewResponseController(w)}
}

// write writes p and flushes it; after the first error it writes nothing.
func (s *streamWriter) write(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if _, s.err = s.w.Write(p); s.err == nil {
		// A writer that cannot flush (a test recorder) buffers instead.
		if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.err = err
		}
	}
	return s.err
}

// Write writes p as it is: the pack of a client without a sideband.
func (s *streamWriter) Write(p []byte) (int, error) {
	if err := s.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// band writes p on sideband channel ch, split into packets that fit.
func (s *streamWriter) band(ch byte, p []byte) error {
	for len(p) > 0 {
		n := min(len(p), maxBandPayload)
		b := fmt.Appendf(make([]byte, 0, n+5), "%04x", n+5)
		b = append(b, ch)
		b = append(b, p[:n]...)
		if err := s.write(b); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// bandWriter is an io.Writer onto one sideband channel.
type bandWriter struct {
	s  *streamWriter
	ch byte
}

func (b bandWriter) Write(p []byte) (int, error) {
	if err := b.s.band(b.ch, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
