package config

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// ParseSourceFlag parses a --source value: "dir:PATH",
// "git:URL[#REF][//SUBPATH]" or "hosted:NAME". Git URLs contain "://" themselves, so SUBPATH
// starts at the last "//" after the scheme's "://" (refs cannot contain "//").
// The name is derived: the base name of PATH (of the absolute path, so
// "dir:." works), or the repository name of URL without ".git", lower-cased
// and with characters a DNS label forbids replaced by "-". Other fields are
// left zero for SetDefaults. Errors quote the value with any credentials in
// the URL redacted. The result is not validated.
func ParseSourceFlag(s string) (Source, error) {
	kind, rest, _ := strings.Cut(s, ":")
	switch kind {
	case SourceKindDir:
		if rest == "" {
			return Source{}, fmt.Errorf("--source %q: empty path", s)
		}
		name, err := dirSourceName(rest)
		if err != nil {
			return Source{}, fmt.Errorf("--source %q: %w", s, err)
		}
		return Source{Name: name, Kind: SourceKindDir, Path: rest}, nil
	case SourceKindHosted:
		if rest == "" {
			return Source{}, fmt.Errorf("--source %q: empty name", s)
		}
		return Source{Name: rest, Kind: SourceKindHosted}, nil
	case SourceKindGit:
		src, err := parseGitSource(rest)
		if err != nil {
			return Source{}, fmt.Errorf("--source %q: %w", "git:"+redactURL(rest), err)
		}
		return src, nil
	default:
		return Source{}, fmt.Errorf("--source %q: want dir:PATH, git:URL[#REF][//SUBPATH] or hosted:NAME", redactURL(s))
	}
}

func parseGitSource(rest string) (Source, error) {
	u := rest
	start := 0 // where the URL's path-ish part begins, after "scheme://"
	if i := strings.Index(u, "://"); i >= 0 {
		start = i + len("://")
	}
	var src Source
	if i := strings.LastIndex(u[start:], "//"); i >= 0 {
		sub := u[start+i+2:]
		u = u[:start+i]
		if sub == "" {
			return Source{}, errors.New("empty subpath after \"//\"")
		}
		src.Subpath = path.Clean(sub)
	}
	if i := strings.Index(u[start:], "#"); i >= 0 {
		src.Ref = u[start+i+1:]
		u = u[:start+i]
		if src.Ref == "" {
			return Source{}, errors.New("empty ref after \"#\"")
		}
	}
	if u == "" || u[start:] == "" {
		return Source{}, errors.New("empty URL")
	}
	src.Kind = SourceKindGit
	src.URL = u
	src.Name = gitSourceName(u)
	if src.Name == "" {
		return Source{}, errors.New("cannot derive a source name from the URL")
	}
	return src, nil
}

// dirSourceName derives a source name from a directory path.
func dirSourceName(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("derive source name: %w", err)
	}
	name := sanitizeName(filepath.Base(abs))
	if name == "" {
		return "", fmt.Errorf("cannot derive a source name from path %q", p)
	}
	return name, nil
}

// gitSourceName derives a source name from a git URL: the last path element
// without ".git". It returns "" when there is none.
func gitSourceName(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+len("://"):]
	}
	u = strings.TrimRight(u, "/")
	u = strings.TrimSuffix(u, ".git")
	if i := strings.LastIndexAny(u, "/:"); i >= 0 {
		u = u[i+1:]
	} else {
		// "host" alone, e.g. "https://example.com": no repository name.
		return ""
	}
	return sanitizeName(u)
}

// sanitizeName turns s into a DNS-1123 label: lower case, runs of other
// characters become one "-", no leading or trailing "-", at most 63 bytes.
func sanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := b.String()
	if len(out) > 63 {
		out = out[:63]
	}
	return strings.TrimRight(out, "-")
}

// redactURL hides credentials in s, a URL or a --source value containing
// one: a password always, and for schemes other than ssh the whole userinfo
// (https://TOKEN@host is a common way to pass a token).
func redactURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	scheme := s[:i]
	if j := strings.LastIndexAny(scheme, ":"); j >= 0 {
		scheme = scheme[j+1:] // "git:https" from a --source value
	}
	authStart := i + len("://")
	authEnd := len(s)
	if j := strings.IndexAny(s[authStart:], "/?#"); j >= 0 {
		authEnd = authStart + j
	}
	auth := s[authStart:authEnd]
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return s
	}
	user, _, hasPassword := strings.Cut(auth[:at], ":")
	switch {
	case strings.EqualFold(scheme, "ssh") && !hasPassword:
		return s
	case strings.EqualFold(scheme, "ssh"):
		user += ":xxxxx"
	default:
		user = "xxxxx"
	}
	return s[:authStart] + user + auth[at:] + s[authEnd:]
}
