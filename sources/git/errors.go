package git

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// ErrRunning is returned by a second call to Run.
var ErrRunning = errors.New("git source is already running")

// Reasons a fetch fails. Every fetch failure is a Result whose Err wraps
// ErrFetch, and also the more specific sentinel below or go-git transport
// sentinel (transport.ErrAuthenticationRequired, ErrAuthorizationFailed,
// ErrRepositoryNotFound, ErrEmptyRemoteRepository) when one applies.
var (
	// ErrFetch marks every failure to reach the remote or to get the
	// wanted commit from it. The message names the URL without
	// credentials.
	ErrFetch = errors.New("fetch failed")
	// ErrRefNotFound is returned when the remote has no branch or tag by
	// the configured name, or does not serve the configured commit.
	ErrRefNotFound = errors.New("ref not found")
	// ErrPackTooLarge is returned when the remote sends more than
	// maxPackBytes for one fetch.
	ErrPackTooLarge = errors.New("pack too large")
)

// Reasons a snapshot of a fetched commit fails. Such a Result's Err is a
// *FileError naming the path and wrapping one of these; they mean the same
// as in sources/dir.
var (
	// ErrSymlink is returned for a symlink that does not resolve to a
	// regular file of the snapshot: it is absolute, leaves the subpath,
	// dangles, points at a directory or submodule, goes through a
	// dot-folder or loops.
	ErrSymlink = errors.New("symlink does not resolve to a regular file inside the root")
	// ErrFileTooLarge is returned for a blob over sources.MaxFileBytes.
	ErrFileTooLarge = errors.New("file too large")
	// ErrTreeTooLarge is returned when the blobs add up to more than
	// sources.MaxTotalBytes.
	ErrTreeTooLarge = errors.New("tree too large")
	// ErrTooManyFiles is returned when the tree holds more than
	// sources.MaxFiles files.
	ErrTooManyFiles = errors.New("too many files")
	// ErrTooManyEntries is returned when the trees walked hold more than
	// maxEntries entries, or nest deeper than maxDepth.
	ErrTooManyEntries = errors.New("too many tree entries")
	// ErrSubpathNotFound is returned when Config.Subpath is not a
	// directory of the commit.
	ErrSubpathNotFound = errors.New("subpath is not a directory of the commit")
	// ErrInvalidTree is returned for objects git itself would refuse or a
	// checkout could not write: a malformed or oversized tree, commit or
	// tag, an entry name such as "..", "a/b" or a duplicate, an unknown
	// mode, or a missing object.
	ErrInvalidTree = errors.New("invalid tree")
)

// FileError is the error of a snapshot that failed because of one path.
type FileError struct {
	// Path is slash-separated and relative to the subpath; "." is the
	// subpath itself.
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *FileError) Unwrap() error { return e.Err }

// maxErrorBytes bounds the message of a fetch error: the remote's own
// reason text is part of it.
const maxErrorBytes = 1024

// fetchError is a fetch failure whose message has been redacted. It
// unwraps to ErrFetch and to the sentinels its cause matched, never to the
// cause itself: the cause's text may hold credentials.
type fetchError struct {
	msg string
	is  []error
}

func (e *fetchError) Error() string { return e.msg }

func (e *fetchError) Unwrap() []error { return e.is }

// causes are the sentinels a fetchError keeps from its cause.
var causes = []error{
	ErrRefNotFound,
	ErrPackTooLarge,
	transport.ErrAuthenticationRequired,
	transport.ErrAuthorizationFailed,
	transport.ErrRepositoryNotFound,
	transport.ErrEmptyRemoteRepository,
	context.DeadlineExceeded,
}

// newFetchError returns "fetch <url>: <cause>" with every secret and any
// URL userinfo removed.
func newFetchError(url string, cause error, rd redactor) error {
	msg := rd.redact("fetch " + url + ": " + cause.Error())
	if len(msg) > maxErrorBytes {
		msg = strings.ToValidUTF8(msg[:maxErrorBytes], "") + "…"
	}
	e := &fetchError{msg: msg, is: []error{ErrFetch}}
	for _, c := range causes {
		if errors.Is(cause, c) {
			e.is = append(e.is, c)
		}
	}
	return e
}

// userinfoRE matches the scheme and userinfo of a URL: "https://u:p@".
var userinfoRE = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@"']*@`)

// redactor removes credentials from text bound for an error or a log.
type redactor struct {
	// secrets are removed wherever they occur, longest first.
	secrets []string
}

// newRedactor returns a redactor for the given secrets (empty ones are
// ignored) and for the forms they take on the wire: URL-escaped, and
// user:password as a basic-auth header.
func newRedactor(user string, secrets ...string) redactor {
	var rd redactor
	for _, s := range secrets {
		if s == "" {
			continue
		}
		rd.secrets = append(rd.secrets, s, url.PathEscape(s), url.QueryEscape(s),
			base64.StdEncoding.EncodeToString([]byte(user+":"+s)))
	}
	slices.SortFunc(rd.secrets, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	rd.secrets = slices.Compact(rd.secrets)
	return rd
}

func (rd redactor) redact(s string) string {
	for _, sec := range rd.secrets {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return userinfoRE.ReplaceAllString(s, "$1")
}

// displayURL is ep as shown in errors and logs: no userinfo, no query.
func displayURL(ep *transport.Endpoint) string {
	c := *ep
	c.User, c.Password = "", ""
	s := c.String()
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return s
}

// redactURL is displayURL for a raw URL, which may not parse.
func redactURL(raw string) string {
	s := userinfoRE.ReplaceAllString(raw, "$1")
	if !strings.Contains(s, "://") {
		// scp-like [user[:secret]@]host:path
		s = s[strings.LastIndexByte(s, '@')+1:]
	}
	if ep, err := transport.NewEndpoint(s); err == nil && (ep.Protocol != "file" || strings.HasPrefix(s, "file://")) {
		return displayURL(ep)
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
	}
	return s
}
