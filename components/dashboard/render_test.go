package dashboard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"kiln.dev/kiln/reconcile"
)

// hostile is what a repository or a cluster object may carry where the
// API does not validate (annotations, messages, file names, logs) and,
// here, also where it does (names, label values): the templates must
// escape it wherever it lands.
const hostile = `"><script>alert(1)</script><img src=x onerror=alert(2)>`

func templateDashboard(t *testing.T) *Dashboard {
	t.Helper()
	d := &Dashboard{cfg: Config{Now: func() time.Time { return time.Unix(1_800_000_000, 0) }}, cache: &cache{}, hub: newHub(time.Second, 1)}
	var err error
	if d.pages, err = d.parseTemplates(); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestRender_escapesEverything(t *testing.T) {
	d := templateDashboard(t)
	ref := Ref{Group: hostile, Version: "v1", Kind: hostile, Namespace: hostile, Name: "javascript:alert(3)"}
	cause := Cause{Reason: hostile, Container: hostile, Message: hostile, Logs: []string{hostile}}
	chain := Chain{Source: hostile, Object: ref, Health: hostile, Message: hostile, File: hostile,
		Paths: []Path{{Via: []Ref{ref}, Cause: cause}}}
	commit := &reconcile.Commit{Hash: hostile, Message: hostile, Author: hostile}
	sum := SourceSummary{Name: hostile, Kind: hostile, URL: hostile, Branch: hostile, Revision: hostile, Commit: commit,
		LastSync: &SyncSummary{Result: hostile, Error: hostile, File: hostile}, Ready: Condition{Status: "False", Reason: hostile, Message: hostile}}
	f := &filter{Namespaces: []string{hostile}, Sources: []string{hostile}, Namespace: hostile, Kinds: []string{hostile}, Show: map[string]bool{"kind": true}}
	pages := map[string]page{
		"overview": {Body: Overview{Sources: []SourceSummary{sum}, NotReady: []Chain{chain},
			Nodes: []NodeSummary{{Name: hostile, Reason: hostile}}}},
		"source": {Body: sourcePage{Summary: sum, Spec: reconcile.SourceSpec{URL: hostile, Ref: hostile},
			History: []SyncSummary{{Revision: hostile, Result: resultFailed, Error: hostile, File: hostile}}}},
		"objects": {Filter: f, Body: listPage[objectRow]{Rows: []objectRow{{Ref: ref, Source: hostile, Health: hostile, Message: hostile, File: hostile}}}},
		"pods":    {Filter: f, Body: listPage[podRow]{Rows: []podRow{{Ref: ref, Status: hostile, Node: hostile, Source: hostile}}}},
		"nodes":   {Body: listPage[nodeRow]{Rows: []nodeRow{{NodeSummary: NodeSummary{Name: hostile, Ref: ref}, Taints: []string{hostile}}}}},
		"events":  {Filter: f, Body: listPage[eventRow]{Rows: []eventRow{{Type: hostile, Reason: hostile, Object: ref, Message: hostile}}}},
		"object": {Body: objectPage{Ref: ref, Found: true, Error: hostile, Health: reconcile.Health{Status: hostile, Message: hostile},
			Source: hostile, File: hostile, Owners: []Ref{ref}, Children: []Ref{ref}, Chain: &chain,
			Events: []eventRow{{Message: hostile}}, YAML: "metadata:\n  labels:\n    x: '" + hostile + "'\n"}},
	}
	for name, p := range pages {
		for _, frag := range []string{"", "?fragment=1"} {
			w := httptest.NewRecorder()
			d.render(w, httptest.NewRequest(http.MethodGet, "/"+frag, nil), http.StatusOK, name, p)
			body := w.Body.String()
			if w.Code != http.StatusOK {
				t.Fatalf("%s%s: %d %s", name, frag, w.Code, body)
			}
			for _, bad := range []string{"<script>alert", "<img src=x", `href="javascript:`} {
				if strings.Contains(body, bad) {
					t.Errorf("%s%s: unescaped %q in:\n%s", name, frag, bad, body)
				}
			}
			if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Errorf("%s%s: the hostile text is not shown as text", name, frag)
			}
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:token@git.example.com/a.git": "https://git.example.com/a.git",
		"https://ghp_abc@github.com/o/r":           "https://github.com/o/r",
		"http://git.example.com/a.git":             "http://git.example.com/a.git",
		"file:///srv/repo":                         "file:///srv/repo",
		"git@github.com:o/r.git":                   "git@github.com:o/r.git",
		"ssh://git@host:22/o/r":                    "ssh://host:22/o/r",
		"https://us%zzer:pw@host/r":                "https://host/r",
		"":                                         "",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{shortRevision("main@sha1:0123456789abcdef0123456789abcdef01234567"), "main@0123456789ab"},
		{shortRevision("dir@sha256:0123456789abcdef0123"), "dir@0123456789ab"},
		{shortRevision("v1"), "v1"},
		{formatCPU(250), "250m"}, {formatCPU(2000), "2"}, {formatCPU(1500), "1.50"},
		{formatMemory(256 << 20), "256Mi"}, {formatMemory(4 << 30), "4.0Gi"}, {formatMemory(512), "512"},
		{firstLine("  subject\n\nbody"), "subject"},
		{healthClass(HealthDegraded), "bad"}, {healthClass(hostile), "unknown"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
