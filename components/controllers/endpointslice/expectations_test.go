package endpointslice

import (
	"testing"
	"time"
)

func TestExpectations_pending(t *testing.T) {
	now := time.Unix(1000, 0)
	e := newExpectations(func() time.Time { return now })
	e.expect("ns/web", expectation{kind: kindSlice, name: "web-abcde", resourceVersion: "10"})
	e.expect("ns/web", expectation{kind: kindEndpoints, name: "web", resourceVersion: "11"})

	seen := map[string]bool{}
	observed := func(x expectation) bool { return seen[x.name] }
	if wait, ok := e.pending("ns/web", observed); !ok || wait != expectationTTL {
		t.Fatalf("pending = %v, %v; want %v, true", wait, ok, expectationTTL)
	}
	if _, ok := e.pending("ns/other", observed); ok {
		t.Error("another key is pending")
	}
	seen["web-abcde"] = true
	now = now.Add(time.Second)
	if wait, ok := e.pending("ns/web", observed); !ok || wait != expectationTTL-time.Second {
		t.Fatalf("pending = %v, %v; want %v, true", wait, ok, expectationTTL-time.Second)
	}
	// The Endpoints write is never seen: it expires.
	now = now.Add(expectationTTL)
	if _, ok := e.pending("ns/web", observed); ok {
		t.Error("expired expectation still pending")
	}
	if len(e.m) != 0 {
		t.Errorf("expectations left: %v", e.m)
	}
}

func TestExpectations_forget(t *testing.T) {
	e := newExpectations(time.Now)
	e.expect("ns/web", expectation{kind: kindSlice, name: "web-abcde", resourceVersion: "10"})
	e.forget("ns/web", kindEndpoints, "web-abcde")
	if _, ok := e.pending("ns/web", func(expectation) bool { return false }); !ok {
		t.Fatal("forgetting another kind dropped the expectation")
	}
	e.forget("ns/web", kindSlice, "web-abcde")
	if _, ok := e.pending("ns/web", func(expectation) bool { return false }); ok {
		t.Error("forgotten expectation still pending")
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		have, want string
		ok         bool
	}{
		{"10", "10", true},
		{"11", "10", true},
		{"9", "10", false},
		{"100", "99", true},
		{"abc", "abc", true},
		{"abd", "abc", false},
	}
	for _, tc := range tests {
		if got := versionAtLeast(tc.have, tc.want); got != tc.ok {
			t.Errorf("versionAtLeast(%q, %q) = %v", tc.have, tc.want, got)
		}
	}
}
