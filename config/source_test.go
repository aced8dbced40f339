package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSourceFlag(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flag    string
		want    Source
		wantErr string
	}{
		{name: "relative dir", flag: "dir:./x", want: Source{Name: "x", Kind: "dir", Path: "./x"}},
		{name: "absolute dir", flag: "dir:/srv/Kiln_Manifests/", want: Source{Name: "kiln-manifests", Kind: "dir", Path: "/srv/Kiln_Manifests/"}},
		{name: "current dir", flag: "dir:.", want: Source{Name: sanitizeName(filepath.Base(cwd)), Kind: "dir", Path: "."}},
		{name: "git https ref subpath", flag: "git:https://example.com/org/repo.git#main//deploy/prod",
			want: Source{Name: "repo", Kind: "git", URL: "https://example.com/org/repo.git", Ref: "main", Subpath: "deploy/prod"}},
		{name: "git file url", flag: "git:file:///tmp/repo", want: Source{Name: "repo", Kind: "git", URL: "file:///tmp/repo"}},
		{name: "git file url subpath", flag: "git:file:///tmp/repo//k8s/", want: Source{Name: "repo", Kind: "git", URL: "file:///tmp/repo", Subpath: "k8s"}},
		{name: "git ssh tag", flag: "git:ssh://git@host/repo.git#v1.2.0", want: Source{Name: "repo", Kind: "git", URL: "ssh://git@host/repo.git", Ref: "v1.2.0"}},
		{name: "git subpath without ref", flag: "git:https://h/o/app//deploy", want: Source{Name: "app", Kind: "git", URL: "https://h/o/app", Subpath: "deploy"}},
		{name: "git ref with slash", flag: "git:https://h/o/app.git#release/1.0//d", want: Source{Name: "app", Kind: "git", URL: "https://h/o/app.git", Ref: "release/1.0", Subpath: "d"}},
		{name: "git scp-like", flag: "git:git@github.com:org/My.Repo.git#main", want: Source{Name: "my-repo", Kind: "git", URL: "git@github.com:org/My.Repo.git", Ref: "main"}},
		{name: "git trailing slash", flag: "git:https://h/o/repo/", want: Source{Name: "repo", Kind: "git", URL: "https://h/o/repo/"}},

		{name: "hosted", flag: "hosted:app", want: Source{Name: "app", Kind: "hosted"}},

		{name: "bad prefix", flag: "svn:https://h/r", wantErr: `--source "svn:https://h/r": want dir:PATH, git:URL[#REF][//SUBPATH] or hosted:NAME`},
		{name: "empty hosted", flag: "hosted:", wantErr: `--source "hosted:": empty name`},
		{name: "no prefix", flag: "/srv/manifests", wantErr: `--source "/srv/manifests": want dir:PATH`},
		{name: "empty", flag: "", wantErr: `--source "": want dir:PATH`},
		{name: "empty dir", flag: "dir:", wantErr: `--source "dir:": empty path`},
		{name: "root dir", flag: "dir:/", wantErr: `--source "dir:/": cannot derive a source name`},
		{name: "empty git", flag: "git:", wantErr: `--source "git:": empty URL`},
		{name: "git scheme only", flag: "git:https://", wantErr: `--source "git:https://": empty URL`},
		{name: "git host only", flag: "git:https://example.com", wantErr: `--source "git:https://example.com": cannot derive a source name`},
		{name: "git empty ref", flag: "git:https://h/o/r.git#//d", wantErr: `--source "git:https://h/o/r.git#//d": empty ref`},
		{name: "git empty subpath", flag: "git:https://h/o/r.git#main//", wantErr: `--source "git:https://h/o/r.git#main//": empty subpath`},
		{name: "bad prefix redacts", flag: "svn:https://user:SECRET@h/r", wantErr: `--source "svn:https://xxxxx@h/r"`},
		{name: "git error redacts", flag: "git:https://tok:SECRET@h#", wantErr: `--source "git:https://xxxxx@h#": empty ref`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSourceFlag(tc.flag)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSourceFlag(%q) error = %v, want %q", tc.flag, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "SECRET") {
					t.Errorf("error leaks a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSourceFlag(%q): %v", tc.flag, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseSourceFlag(%q) = %+v, want %+v", tc.flag, got, tc.want)
			}
		})
	}
}

// A parsed flag, once defaulted, must validate.
func TestParseSourceFlag_validates(t *testing.T) {
	for _, flag := range []string{
		"dir:./x",
		"git:https://example.com/org/repo.git#main//deploy/prod",
		"git:file:///tmp/other",
		"git:ssh://git@host/third.git#v1.2.0",
	} {
		t.Run(flag, func(t *testing.T) {
			s, err := ParseSourceFlag(flag)
			if err != nil {
				t.Fatal(err)
			}
			c := &Config{NodeName: "n", Sources: []Source{s}}
			c.SetDefaults()
			if err := c.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://h/o/r.git", "https://h/o/r.git"},
		{"https://tok@h/o/r.git", "https://xxxxx@h/o/r.git"},
		{"https://u:p@h/o/r.git#main", "https://xxxxx@h/o/r.git#main"},
		{"ssh://git@h/r.git", "ssh://git@h/r.git"},
		{"ssh://git:pw@h/r.git", "ssh://git:xxxxx@h/r.git"},
		{"git:https://u:p@h/r", "git:https://xxxxx@h/r"},
		{"git@h:o/r.git", "git@h:o/r.git"},
		{"https://h/path@v1", "https://h/path@v1"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := redactURL(tc.in); got != tc.want {
				t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseSourceFlag(f *testing.F) {
	for _, s := range []string{"dir:./x", "git:https://example.com/org/repo.git#main//deploy/prod", "git:file:///tmp/repo", "git:ssh://git@host/repo.git#v1.2.0", "git:a://#//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, err := ParseSourceFlag(s)
		if err != nil {
			return
		}
		if src.Name == "" || (src.Kind != SourceKindDir && src.Kind != SourceKindGit) {
			t.Fatalf("ParseSourceFlag(%q) = %+v without error", s, src)
		}
	})
}
