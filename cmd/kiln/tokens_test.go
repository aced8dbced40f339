package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadTokenAuthFile(t *testing.T) {
	write := func(t *testing.T, content string) string {
		p := filepath.Join(t.TempDir(), "tokens.csv")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	users, err := readTokenAuthFile(write(t, "# comment\n\ntok-a,alice,1\ntok-b, bob ,2,\"kiln:viewers, team\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := users["tok-a"]; a.Name != "alice" || a.UID != "1" || len(a.Groups) != 0 {
		t.Errorf("alice = %+v", a)
	}
	if b := users["tok-b"]; b.Name != "bob" || !slices.Equal(b.Groups, []string{"kiln:viewers", "team"}) {
		t.Errorf("bob = %+v", b)
	}
	if users, err := readTokenAuthFile(""); err != nil || users != nil {
		t.Errorf("no file: %v, %v", users, err)
	}
	for _, tc := range []struct{ name, content, want string }{
		{"too few fields", "secret-1,alice\n", "line 1: want token,user,uid"},
		{"empty user", "ok,a,1\nsecret-2,,2\n", "line 2: the user name is empty"},
		{"token with a space", "secret 3,alice,1\n", "line 1: the token is empty or holds whitespace"},
		{"token twice", "secret-4,a,1\nsecret-4,b,2\n", `line 2: the token of user "b" is given twice`},
		{"bad quoting", "secret-5,a,1,\"g\n", "tokenAuthFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readTokenAuthFile(write(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q shows a token", err)
			}
		})
	}
	if _, err := readTokenAuthFile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "tokenAuthFile") {
		t.Errorf("missing file: %v", err)
	}
}
