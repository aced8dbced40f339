package git

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

func TestNew_validation(t *testing.T) {
	ok := Config{Name: "n", URL: "https://git.example.com/org/repo.git", WorkDir: "/tmp/w"}
	cases := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{name: "valid", modify: func(*Config) {}},
		{name: "no name", modify: func(c *Config) { c.Name = "" }, want: "name is required"},
		{name: "no url", modify: func(c *Config) { c.URL = "" }, want: "url is required"},
		{name: "no workdir", modify: func(c *Config) { c.WorkDir = "" }, want: "workDir is required"},
		{name: "negative interval", modify: func(c *Config) { c.Interval = -1 }, want: "interval"},
		{name: "git scheme", modify: func(c *Config) { c.URL = "git://host/repo" }, want: "not supported"},
		{name: "bare path", modify: func(c *Config) { c.URL = "/srv/repo.git" }, want: "file://"},
		{name: "relative file", modify: func(c *Config) { c.URL = "file://repo.git" }, want: "absolute"},
		{name: "file with credentials", modify: func(c *Config) { c.URL = "file:///srv/repo.git"; c.CredentialsFile = "/k" }, want: "not used"},
		{name: "ssh without key", modify: func(c *Config) { c.URL = "git@github.com:org/repo.git" }, want: "required for ssh"},
		{name: "ssh with key", modify: func(c *Config) { c.URL = "ssh://git@host:2222/repo.git"; c.CredentialsFile = "/k" }},
		{name: "scp-like with key", modify: func(c *Config) { c.URL = "git@github.com:org/repo.git"; c.CredentialsFile = "/k" }},
		{name: "scp password", modify: func(c *Config) { c.URL = "u:pw-canary@host:r.git"; c.CredentialsFile = "/k" }, want: "no password"},
		{name: "ssh password", modify: func(c *Config) { c.URL = "ssh://u:pw-canary@host/r"; c.CredentialsFile = "/k" }, want: "ssh passwords"},
		{name: "subpath abs", modify: func(c *Config) { c.Subpath = "/etc" }, want: "relative"},
		{name: "subpath dotdot", modify: func(c *Config) { c.Subpath = "a/../../b" }, want: `".."`},
		{name: "subpath backslash", modify: func(c *Config) { c.Subpath = `a\b` }, want: "slash"},
		{name: "subpath clean", modify: func(c *Config) { c.Subpath = "./a/b/" }},
		{name: "ref traversal", modify: func(c *Config) { c.Ref = "../../config" }, want: "not a valid ref"},
		{name: "ref heads traversal", modify: func(c *Config) { c.Ref = "refs/heads/../../config" }, want: "not a valid ref"},
		{name: "ref other namespace", modify: func(c *Config) { c.Ref = "refs/pull/1/head" }, want: "only refs/heads/"},
		{name: "ref with space", modify: func(c *Config) { c.Ref = "a b" }, want: "not a valid ref"},
		{name: "ref commit", modify: func(c *Config) { c.Ref = strings.Repeat("a", 40) }},
		{name: "ref branch with slash", modify: func(c *Config) { c.Ref = "release/1.x" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.modify(&cfg)
			s, err := New(cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("New succeeded, want error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "canary") {
				t.Errorf("error %q leaks the password", err)
			}
			if err == nil && s.cfg.Interval != DefaultInterval {
				t.Errorf("Interval = %v, want the default", s.cfg.Interval)
			}
		})
	}
}

func TestNew_subpathAndURL(t *testing.T) {
	s, err := New(Config{Name: "n", URL: "https://u:pw-canary@git.example.com:8443/org/repo.git?x=1", WorkDir: "w", Subpath: "./a/b/"})
	if err != nil {
		t.Fatal(err)
	}
	if s.subpath != "a/b" {
		t.Errorf("subpath = %q", s.subpath)
	}
	if want := "https://git.example.com:8443/org/repo.git"; s.url != want {
		t.Errorf("url = %q, want %q", s.url, want)
	}
	if s.ep.User != "" || s.ep.Password != "" || strings.Contains(s.ep.String(), "canary") {
		t.Errorf("endpoint keeps credentials: %s", s.ep.String())
	}
	if s.urlUser != "u" || s.urlPassword != "pw-canary" {
		t.Errorf("userinfo = %q:%q", s.urlUser, s.urlPassword)
	}
}

func TestRedact(t *testing.T) {
	rd := newRedactor("git", "s3cret/+=", "")
	cause := fmt.Errorf("%w: GET https://git:s3cret%%2F+=@host/r: Authorization: Basic Z2l0OnMzY3JldC8rPQ== ssh://git@host/x s3cret/+= s3cret%%2F%%2B%%3D",
		transport.ErrAuthenticationRequired)
	err := newFetchError("https://host/r", cause, rd)
	msg := err.Error()
	for _, leak := range []string{"s3cret", "Z2l0OnMzY3JldC8rPQ==", "git@", "git:"} {
		if strings.Contains(msg, leak) {
			t.Errorf("message %q contains %q", msg, leak)
		}
	}
	if !strings.HasPrefix(msg, "fetch https://host/r: ") {
		t.Errorf("message %q does not start with the URL", msg)
	}
	if !errors.Is(err, ErrFetch) || !errors.Is(err, transport.ErrAuthenticationRequired) {
		t.Errorf("%v lost its sentinels", err)
	}
	// The cause itself is not reachable by unwrapping.
	for e := range unwrapAll(err) {
		if strings.Contains(e.Error(), "s3cret") {
			t.Errorf("unwrapped error %q holds the secret", e)
		}
	}
	long := newFetchError("u", errors.New(strings.Repeat("é", 2000)), rd)
	if len(long.Error()) > maxErrorBytes+len("…") {
		t.Errorf("message is %d bytes", len(long.Error()))
	}
}

// unwrapAll yields err and everything it wraps.
func unwrapAll(err error) func(func(error) bool) {
	return func(yield func(error) bool) {
		stack := []error{err}
		for len(stack) > 0 {
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if !yield(e) {
				return
			}
			switch u := e.(type) {
			case interface{ Unwrap() error }:
				if w := u.Unwrap(); w != nil {
					stack = append(stack, w)
				}
			case interface{ Unwrap() []error }:
				stack = append(stack, u.Unwrap()...)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"https://user:pw@host/r.git":     "https://host/r.git",
		"https://tok@host/r.git?t=x":     "https://host/r.git",
		"git@github.com:org/r.git":       "ssh://github.com/org/r.git",
		"user:pw@host:bad path with spa": "ssh://host/bad path with spa",
		"user:pw@host":                   "host",
		"file:///srv/r.git":              "file:///srv/r.git",
		"https://u:p@[::1/x":             "https://[::1/x",
	}
	for in, want := range cases {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJoinLink(t *testing.T) {
	cases := []struct {
		link, target, want string
		ok                 bool
	}{
		{"a/link", "b.yaml", "a/b.yaml", true},
		{"a/link", "../b.yaml", "b.yaml", true},
		{"a/b/link", "../../c/./d.yaml", "c/d.yaml", true},
		{"link", "../x", "", false},
		{"a/link", "../../etc/passwd", "", false},
		{"a/link", "/etc/passwd", "", false},
		{"a/link", "..", "", false},
		{"a/link", "", "", false},
		{"a/link", "x\x00y", "", false},
		{"a/link", "b/../../..", "", false},
	}
	for _, tc := range cases {
		got, ok := joinLink(tc.link, tc.target)
		if got != tc.want || ok != tc.ok {
			t.Errorf("joinLink(%q, %q) = %q, %v; want %q, %v", tc.link, tc.target, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzJoinLink checks that a resolved symlink target never leaves the
// root, whatever the repository says.
func FuzzJoinLink(f *testing.F) {
	f.Add("a/link", "../b")
	f.Add("link", "../../etc/passwd")
	f.Add("a/b/c", "/x")
	f.Add("a/link", "./././../..//x")
	f.Fuzz(func(t *testing.T, link, target string) {
		link = path.Clean(link)
		if link == "." || strings.HasPrefix(link, "..") || path.IsAbs(link) {
			return // links are always clean paths inside the root
		}
		j, ok := joinLink(link, target)
		if !ok {
			return
		}
		if j == "" || j == "." || path.IsAbs(j) || j == ".." || strings.HasPrefix(j, "../") || path.Clean(j) != j {
			t.Fatalf("joinLink(%q, %q) = %q escapes or is not clean", link, target, j)
		}
	})
}

func TestLimitedReader(t *testing.T) {
	errBig := errors.New("too big")
	read := func(n, limit int) error {
		_, err := io.ReadAll(&limitedReader{r: iotest.HalfReader(strings.NewReader(strings.Repeat("x", n))), left: int64(limit) + 1, err: errBig})
		return err
	}
	if err := read(10, 10); err != nil {
		t.Errorf("at the limit: %v", err)
	}
	if err := read(11, 10); !errors.Is(err, errBig) {
		t.Errorf("over the limit: %v", err)
	}
}

func TestCleanSubpath(t *testing.T) {
	for in, want := range map[string]string{"": "", ".": "", "./": "", "a": "a", "a/./b/": "a/b", "a//b": "a/b", ".config/k8s": ".config/k8s"} {
		got, err := cleanSubpath(in)
		if err != nil || got != want {
			t.Errorf("cleanSubpath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
