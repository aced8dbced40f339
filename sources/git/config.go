package git

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DefaultInterval is the poll interval when Config.Interval is zero.
const DefaultInterval = 15 * time.Second

// DefaultBranch is the branch followed when Config.Ref is empty and the
// remote does not say which branch its HEAD points at.
const DefaultBranch = "main"

// Config says which repository, ref and subpath to follow. The zero value
// of Ref, Subpath, Interval, CredentialsFile and Logger is a default.
type Config struct {
	// Name is the source's name; it is copied into every Snapshot.
	Name string
	// URL is the repository: file:///abs/path, http(s)://host/path,
	// ssh://[user@]host[:port]/path or scp-like user@host:path. It may
	// carry http(s) credentials as userinfo, but CredentialsFile is the
	// better place for them; either way they never appear in errors or
	// logs.
	URL string
	// Ref is what to follow: a branch name, a tag name (annotated tags are
	// peeled to their commit), refs/heads/X or refs/tags/X, or an exact
	// 40-hex commit. A bare name that is both a branch and a tag means the
	// branch. Empty means the branch the remote HEAD points at, or
	// DefaultBranch if the remote does not say.
	Ref string
	// Subpath limits the snapshot to the files under this directory of
	// the repository; snapshot paths are relative to it. It must be
	// relative and must not contain "..". Empty means the whole tree.
	Subpath string
	// Interval is the poll period; zero means DefaultInterval. Trigger
	// fetches between polls.
	Interval time.Duration
	// CredentialsFile is read before every fetch, so it can be rotated in
	// place. For http(s) it holds a token (one line; sent as basic auth
	// with user "git", as GitHub and Gitea expect) or "username:password".
	// For ssh it holds a PEM private key without passphrase, and a file
	// named known_hosts beside it, if present, pins the host keys; without
	// one any host key is accepted (a warning is logged once per Run). It
	// is required for ssh and must be empty for file://. Its contents never
	// appear in errors or logs.
	CredentialsFile string
	// WorkDir is a directory this source alone uses (the caller passes a
	// random one, e.g. DATA_DIR/sources/<random>). Run keeps its bare
	// clone in WorkDir/repo.git, recreated empty at start and removed at
	// stop. Required.
	WorkDir string
	// Logger receives lifecycle and degraded-mode messages; nil means
	// slog.Default().
	Logger *slog.Logger
}

// refKind says how Config.Ref is resolved against the remote's refs.
type refKind int

const (
	refHead   refKind = iota // Ref empty: the remote HEAD's branch
	refAuto                  // a bare name: branch, else tag
	refBranch                // refs/heads/X
	refTag                   // refs/tags/X
	refCommit                // an exact 40-hex commit
)

// ref is Config.Ref parsed once by New.
type ref struct {
	kind refKind
	// name is the short branch or tag name (refAuto, refBranch, refTag).
	name string
	// hash is the commit (refCommit).
	hash plumbing.Hash
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// parseRef parses Config.Ref. Every name is checked with git's ref-name
// rules, so no name that could act as a path outside refs/ reaches the
// repository storage.
func parseRef(s string) (ref, error) {
	switch {
	case s == "":
		return ref{kind: refHead}, nil
	case len(s) == 40 && isHex(s):
		return ref{kind: refCommit, hash: plumbing.NewHash(strings.ToLower(s))}, nil
	case strings.HasPrefix(s, "refs/heads/"):
		r := ref{kind: refBranch, name: strings.TrimPrefix(s, "refs/heads/")}
		return r, validRefName(plumbing.ReferenceName(s))
	case strings.HasPrefix(s, "refs/tags/"):
		r := ref{kind: refTag, name: strings.TrimPrefix(s, "refs/tags/")}
		return r, validRefName(plumbing.ReferenceName(s))
	case strings.HasPrefix(s, "refs/"):
		return ref{}, fmt.Errorf("git: ref %q: only refs/heads/ and refs/tags/ refs can be followed", s)
	default:
		r := ref{kind: refAuto, name: s}
		if err := validRefName(plumbing.NewBranchReferenceName(s)); err != nil {
			return ref{}, err
		}
		return r, nil
	}
}

func validRefName(n plumbing.ReferenceName) error {
	if err := n.Validate(); err != nil {
		return fmt.Errorf("git: ref %q is not a valid ref name", n.String())
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// cleanSubpath checks Config.Subpath and returns it slash-separated and
// cleaned, "" for the root.
func cleanSubpath(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if strings.ContainsAny(s, "\\\x00") {
		return "", fmt.Errorf("git: subpath %q must be slash-separated", s)
	}
	if path.IsAbs(s) {
		return "", fmt.Errorf("git: subpath %q must be relative", s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return "", fmt.Errorf("git: subpath %q must not contain \"..\"", s)
		}
	}
	c := path.Clean(s)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// parseURL checks Config.URL and returns its endpoint with any userinfo
// split off: the endpoint is what requests are made to, so it must never
// carry credentials (go-git renders Endpoint.String() into request URLs
// and from there into error messages).
func parseURL(raw string) (ep *transport.Endpoint, user, password string, err error) {
	if raw == "" {
		return nil, "", "", errors.New("git: url is required")
	}
	if !strings.Contains(raw, "://") {
		if at := strings.LastIndexByte(raw, '@'); at >= 0 && strings.Contains(raw[:at], ":") {
			// go-git would read "user:secret@host" as host "user" and
			// path "secret@host", putting the secret in every message.
			return nil, "", "", fmt.Errorf("git: url %s: scp-like URLs take no password", redactURL(raw))
		}
	}
	ep, err = transport.NewEndpoint(raw)
	if err != nil {
		// The parse error may quote the URL, credentials and all.
		return nil, "", "", fmt.Errorf("git: url %s is not a valid git URL", redactURL(raw))
	}
	switch ep.Protocol {
	case "http", "https":
		if ep.Host == "" {
			return nil, "", "", fmt.Errorf("git: url %s has no host", redactURL(raw))
		}
	case "ssh":
		if ep.Host == "" {
			return nil, "", "", fmt.Errorf("git: url %s has no host", redactURL(raw))
		}
		if ep.Password != "" {
			return nil, "", "", fmt.Errorf("git: url %s: ssh passwords are not supported; use credentialsFile with a key", redactURL(raw))
		}
	case "file":
		// go-git also reads a bare path as file://; require the scheme so
		// that a typo is not silently taken for a local path.
		if !strings.HasPrefix(raw, "file://") {
			return nil, "", "", fmt.Errorf("git: url %s: local repositories need a file:// URL", redactURL(raw))
		}
		if !filepath.IsAbs(ep.Path) {
			return nil, "", "", fmt.Errorf("git: url %s: file:// path must be absolute", redactURL(raw))
		}
	default:
		return nil, "", "", fmt.Errorf("git: url %s: scheme %q is not supported (file, http, https, ssh)", redactURL(raw), ep.Protocol)
	}
	user, password = ep.User, ep.Password
	clean := *ep
	clean.Password = ""
	if clean.Protocol != "ssh" {
		// For ssh the user is the login name, not a secret.
		clean.User = ""
	}
	return &clean, user, password, nil
}
