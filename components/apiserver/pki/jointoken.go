package pki

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Join token layout, as k3s's: "K10" <CA hash hex> "::node:" <secret>.
// The hash lets an agent check the server before it sends the secret.
const (
	joinTokenPrefix = "K10"
	joinTokenSep    = "::node:"
	caHashPrefix    = "sha256:"
	// caHashHexLen is the length of a hex SHA-256.
	caHashHexLen = 64
)

// FormatJoinToken returns the token an agent joins with: caHash is what
// (*CA).Hash returns ("sha256:<hex>"; the bare hex is accepted too) and
// secret the join secret the server accepts as a bootstrap bearer token.
func FormatJoinToken(caHash, secret string) string {
	return joinTokenPrefix + strings.TrimPrefix(caHash, caHashPrefix) + joinTokenSep + secret
}

// ParseJoinToken splits a token written by FormatJoinToken into the CA hash
// ("sha256:<hex>", comparable with (*CA).Hash) and the secret. A bare secret
// is an error: without the hash an agent cannot tell the real server from
// an impostor. Errors say what is wrong and never contain the secret.
func ParseJoinToken(s string) (caHash, secret string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", errors.New("join token is empty")
	}
	rest, ok := strings.CutPrefix(s, joinTokenPrefix)
	if !ok {
		return "", "", errors.New("join token does not start with K10: want the whole token from the server's DATA_DIR/node-token (K10<ca hash>::node:<secret>), which pins the server's CA")
	}
	hash, secret, ok := strings.Cut(rest, joinTokenSep)
	if !ok {
		return "", "", errors.New("join token has no \"::node:\" separator: want K10<ca hash>::node:<secret>")
	}
	if len(hash) != caHashHexLen {
		return "", "", fmt.Errorf("join token CA hash has %d characters, want %d hex characters", len(hash), caHashHexLen)
	}
	if _, err := hex.DecodeString(hash); err != nil {
		return "", "", errors.New("join token CA hash is not hexadecimal")
	}
	if err := checkJoinSecret(secret); err != nil {
		return "", "", err
	}
	return caHashPrefix + strings.ToLower(hash), secret, nil
}

// JoinSecret returns the secret of a join token, or s itself when it is a
// bare secret: what a server given --token accepts from agents. Unlike an
// agent, a server needs no CA hash; when s carries one, it is checked for
// form only (the server's own CA is the truth).
func JoinSecret(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, joinTokenPrefix) && strings.Contains(s, joinTokenSep) {
		_, secret, err := ParseJoinToken(s)
		return secret, err
	}
	if err := checkJoinSecret(s); err != nil {
		return "", err
	}
	return s, nil
}

// checkJoinSecret accepts what can go in an Authorization header as a
// bearer token.
func checkJoinSecret(secret string) error {
	if secret == "" {
		return errors.New("join token secret is empty")
	}
	if !HeaderSafe(secret) {
		return errors.New("join token secret contains whitespace, control or non-ASCII characters")
	}
	return nil
}
