package join

import (
	"slices"
	"testing"
)

func TestNormalizeServers(t *testing.T) {
	got, err := normalizeServers([]string{"10.0.0.1", "https://10.0.0.2:7443/", "10.0.0.3:6443,https://10.0.0.1:6443", " ", "https://[fd00::1]"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://10.0.0.1:6443", "https://10.0.0.2:7443", "https://10.0.0.3:6443", "https://[fd00::1]:6443"}
	if !slices.Equal(got, want) {
		t.Fatalf("normalizeServers = %v, want %v", got, want)
	}
	for _, bad := range []string{"http://10.0.0.1", "https://10.0.0.1/api", "https://u:p@10.0.0.1", "https://10.0.0.1?x=1"} {
		if _, err := normalizeServers([]string{bad}); err == nil {
			t.Errorf("normalizeServers(%q) accepted it", bad)
		}
	}
	if _, err := normalizeServers([]string{"", ","}); err == nil {
		t.Error("no server accepted")
	}
}

func TestMergeServers(t *testing.T) {
	got := mergeServers([]string{"https://a:6443"}, []string{"https://b:6443", "a", "http://bad", "https://a:6443"})
	if want := []string{"https://a:6443", "https://b:6443"}; !slices.Equal(got, want) {
		t.Fatalf("mergeServers = %v, want %v", got, want)
	}
}
