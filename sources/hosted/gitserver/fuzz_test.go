package gitserver

import (
	"bytes"
	"testing"
)

// The request parsers read what any client sends: they must not panic,
// loop or allocate beyond their bounds on any input.

func FuzzParseCommands(f *testing.F) {
	f.Add([]byte("00900000000000000000000000000000000000000000 1111111111111111111111111111111111111111 refs/heads/main\x00report-status side-band-64k push-options\n0000000fkiln.dry-run0000PACK"))
	f.Add([]byte("0000"))
	f.Add([]byte("0004"))
	f.Add([]byte("ffff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseCommands(&pktReader{r: bytes.NewReader(b)})
		if err == nil && len(req.updates) > maxCommands {
			t.Fatalf("%d commands", len(req.updates))
		}
	})
}

func FuzzParseUploadRequest(f *testing.F) {
	f.Add([]byte("0054want 1111111111111111111111111111111111111111 multi_ack_detailed side-band-64k ofs-delta\n00000032have 2222222222222222222222222222222222222222\n0009done\n"))
	f.Add([]byte("0000"))
	f.Add([]byte("000ashallow x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseUploadRequest(bytes.NewReader(b))
		if err == nil && (len(req.wants) > maxWants || len(req.haves) > maxHaves) {
			t.Fatalf("%d wants, %d haves", len(req.wants), len(req.haves))
		}
	})
}

// Bad requests over HTTP are answered 4xx, never a panic or a 5xx.
func TestServer_badRequests(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"truncated pkt", "00"},
		{"bad length", "zzzz"},
		{"shallow", "0035shallow 1111111111111111111111111111111111111111\n0000"},
		{"short command", "000bfoo bar\n0000"},
		{"bad hash", "006azzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz 1111111111111111111111111111111111111111 refs/heads/main\n0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseCommands(&pktReader{r: bytes.NewReader([]byte(tc.body))}); err == nil {
				t.Errorf("parseCommands(%q) succeeded", tc.body)
			}
		})
	}
}
