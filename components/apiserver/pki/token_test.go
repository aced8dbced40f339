package pki

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "admin-token")
	token, err := EnsureToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(token); err != nil || len(raw) != 32 {
		t.Errorf("token %q is not 32 hex-encoded bytes", token)
	}
	if got := fileMode(t, path); got != 0o600 {
		t.Errorf("token file mode %o, want 600", got)
	}
	if got := fileMode(t, filepath.Dir(path)); got != 0o700 {
		t.Errorf("created directory mode %o, want 700", got)
	}
	again, err := EnsureToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if again != token {
		t.Errorf("second EnsureToken returned a different token")
	}
	other, err := EnsureToken(filepath.Join(t.TempDir(), "token"))
	if err != nil {
		t.Fatal(err)
	}
	if other == token {
		t.Errorf("two generated tokens are equal")
	}
}

func TestEnsureToken_existingFile(t *testing.T) {
	const (
		secret   = "s3cr3t-VALUE"
		badChars = "token contains whitespace, control or non-ASCII characters"
	)
	tests := []struct {
		name    string
		content string
		want    string
		wantErr string
	}{
		{name: "hand-written with newline", content: "my-token\n", want: "my-token"},
		{name: "surrounding blanks", content: "  my-token \r\n", want: "my-token"},
		{name: "empty", content: "", wantErr: "empty token file"},
		{name: "blank", content: " \n", wantErr: "empty token file"},
		{name: "inner space", content: secret + " x", wantErr: badChars},
		{name: "two lines", content: secret + "\nx\n", wantErr: badChars},
		{name: "control character", content: secret + "\x00", wantErr: badChars},
		{name: "non-ASCII", content: secret + "é", wantErr: badChars},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := EnsureToken(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("EnsureToken error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks the token: %v", err)
				}
				if b, _ := os.ReadFile(path); string(b) != tc.content {
					t.Errorf("token file was modified")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("EnsureToken = %q, want %q", got, tc.want)
			}
		})
	}
}
