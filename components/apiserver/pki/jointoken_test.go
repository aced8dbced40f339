package pki

import (
	"strings"
	"testing"
)

func TestFormatJoinToken_roundTrip(t *testing.T) {
	ca := newCA(t)
	secret := strings.Repeat("ab", 32)
	tok := FormatJoinToken(ca.Hash(), secret)
	if want := "K10" + strings.TrimPrefix(ca.Hash(), "sha256:") + "::node:" + secret; tok != want {
		t.Fatalf("FormatJoinToken = %q, want %q", tok, want)
	}
	hash, got, err := ParseJoinToken(tok + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if hash != ca.Hash() || got != secret {
		t.Fatalf("ParseJoinToken = %q, %q; want %q, %q", hash, got, ca.Hash(), secret)
	}
	// The bare hex hash is accepted by Format as well.
	if FormatJoinToken(strings.TrimPrefix(ca.Hash(), "sha256:"), secret) != tok {
		t.Fatal("FormatJoinToken with a bare hex hash differs")
	}
}

func TestParseJoinToken_errors(t *testing.T) {
	const secret = "s3cr3t-value-never-echoed"
	hash := strings.Repeat("0f", 32)
	for _, tc := range []struct{ name, token, want string }{
		{"empty", "  ", "empty"},
		{"bare secret", secret, "does not start with K10"},
		{"no separator", "K10" + hash + secret, `no "::node:" separator`},
		{"short hash", "K10abcd::node:" + secret, "CA hash has 4 characters, want 64"},
		{"hash not hex", "K10" + strings.Repeat("zz", 32) + "::node:" + secret, "not hexadecimal"},
		{"empty secret", "K10" + hash + "::node:", "secret is empty"},
		{"secret with blank", "K10" + hash + "::node:" + secret + " x", "whitespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseJoinToken(tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseJoinToken(%q) error = %v, want one containing %q", tc.token, err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q contains the secret", err)
			}
		})
	}
}

func TestJoinSecret(t *testing.T) {
	hash := strings.Repeat("0f", 32)
	for _, tc := range []struct{ name, in, want string }{
		{"bare", "abc123", "abc123"},
		{"full token", "K10" + hash + "::node:abc123", "abc123"},
		{"trailing newline", "abc123\n", "abc123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := JoinSecret(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("JoinSecret(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := JoinSecret("K10abc::node:x"); err == nil {
		t.Fatal("JoinSecret accepted a token with a malformed hash")
	}
	if _, err := JoinSecret(""); err == nil {
		t.Fatal("JoinSecret accepted an empty secret")
	}
}

func FuzzParseJoinToken(f *testing.F) {
	f.Add("K10" + strings.Repeat("0f", 32) + "::node:abc")
	f.Add("abc")
	f.Add("K10::node:")
	f.Fuzz(func(t *testing.T, s string) {
		hash, secret, err := ParseJoinToken(s)
		if err != nil {
			return
		}
		// What parses formats back to the same token (modulo case and
		// surrounding blanks).
		if got := FormatJoinToken(hash, secret); !strings.EqualFold(got, strings.TrimSpace(s)) {
			t.Fatalf("FormatJoinToken(ParseJoinToken(%q)) = %q", s, got)
		}
	})
}
