package pki

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tokenBytes is the entropy of a generated token.
const tokenBytes = 32

// EnsureToken returns the token stored in the file at path, creating it
// when missing: 32 random bytes, hex-encoded (64 characters), written with
// mode 0600 (its directory is created 0700 if needed). Surrounding
// whitespace in an existing file is ignored, so a token written by hand with
// a trailing newline works; an empty file or one with characters that cannot
// go in an Authorization header is an error. Errors never contain the token.
func EnsureToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		token := strings.TrimSpace(string(b))
		if token == "" {
			return "", fmt.Errorf("%s: empty token file; remove it to generate a new token", path)
		}
		if !HeaderSafe(token) {
			return "", fmt.Errorf("%s: token contains whitespace, control or non-ASCII characters", path)
		}
		return token, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read token: %w", err)
	}

	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	token := hex.EncodeToString(raw)
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	if err := WriteFileAtomic(path, []byte(token+"\n"), secretMode); err != nil {
		return "", err
	}
	return token, nil
}

// HeaderSafe reports whether token can go in an Authorization header as
// is: no whitespace, control or non-ASCII characters.
func HeaderSafe(token string) bool {
	return strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r >= 0x7f }) < 0
}
