package admission

import (
	"strings"
	"testing"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// formatSamples are strings at the edges of the formats: empty, lone and
// leading or trailing punctuation, case, prefixes, Unicode that lowers to
// ASCII, and lengths at and past each limit.
func formatSamples() []string {
	s := []string{
		"", "a", "A", "0", "-", "_", ".", "/", "a/", "/a", "a/b", "a//b", "a/b/c",
		"ab", "a-b", "a_b", "a.b", "-a", "a-", "_a", "a_", ".a", "a.",
		"a..b", "a.-b", "a-.b", "a--b", "Ab", "aB", "a b", "a\tb", "a=b", "é", "a\u212ab",
		"app.kubernetes.io/name", "App.Kubernetes.IO/name", "example.com/My_Key.1",
		"kubectl.kubernetes.io/default-container", "-x.com/a", "x-.com/a", "x..com/a",
		".x.com/a", "x.com./a", "x.com/-a", "x.com/a-", "x.com/", "x_y.com/a",
		"x.com/\u212a", "\u212a.com/a", "pod-template-hash", "5d9c7b8f6d",
		"value-1-for-bench-00001", "main@sha1:3f1c", "1.27.3", "true",
	}
	for _, n := range []int{62, 63, 64, 252, 253, 254} {
		s = append(s, strings.Repeat("a", n), strings.Repeat("a", n)+"/a", "a/"+strings.Repeat("a", n),
			strings.Repeat("a", n-2)+".b", strings.Repeat("A", n))
	}
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	return append(s, long, long+"/x", long+"e/x", long[:len(long)-1]+"-")
}

// checkFormat fails when a fast check says valid where apimachinery finds
// a problem, or (for the exact checks) invalid where it finds none.
func checkFormat(t *testing.T, name string, s string, fast bool, msgs []string) {
	t.Helper()
	if fast != (len(msgs) == 0) {
		t.Errorf("%s(%q) = %v, apimachinery says %q", name, s, fast, msgs)
	}
}

func TestFormat_matchesApimachinery(t *testing.T) {
	for _, s := range formatSamples() {
		checkFormat(t, "isDNS1123Label", s, isDNS1123Label(s), utilvalidation.IsDNS1123Label(s))
		checkFormat(t, "isDNS1123Subdomain", s, isDNS1123Subdomain(s), utilvalidation.IsDNS1123Subdomain(s))
		checkFormat(t, "isQualifiedName", s, isQualifiedName(s, false), utilvalidation.IsQualifiedName(s))
		checkFormat(t, "isLabelValue", s, isLabelValue(s), utilvalidation.IsValidLabelValue(s))

		// Annotation keys: apimachinery lowers them with Unicode rules,
		// which the fast check leaves to it, so only "valid" must agree.
		errs := apimachineryvalidation.ValidateAnnotations(map[string]string{s: "v"}, field.NewPath("a"))
		if annotationsValid(map[string]string{s: "v"}) && len(errs) > 0 {
			t.Errorf("annotationsValid(%q) = true, apimachinery says %v", s, errs)
		}
		if got := validateAnnotations(map[string]string{s: "v"}, field.NewPath("a")); len(got) != len(errs) {
			t.Errorf("validateAnnotations(%q) = %v, apimachinery says %v", s, got, errs)
		}
		labels := map[string]string{s: s}
		if got, want := validateLabels(labels, field.NewPath("l")), metav1validation.ValidateLabels(labels, field.NewPath("l")); len(got) != len(want) {
			t.Errorf("validateLabels(%q) = %v, apimachinery says %v", s, got, want)
		}
	}
	big := map[string]string{"a": strings.Repeat("x", apimachineryvalidation.TotalAnnotationSizeLimitB)}
	if annotationsValid(big) {
		t.Error("annotationsValid accepts annotations over the size limit")
	}
}

// TestValidateObjectMeta_sameAsApimachinery checks that leaving valid
// labels and annotations out changes no result.
func TestValidateObjectMeta_sameAsApimachinery(t *testing.T) {
	for _, s := range formatSamples() {
		m := &metav1.ObjectMeta{
			Name: "x", Namespace: "default",
			Labels:      map[string]string{"app": "web", s: "v"},
			Annotations: map[string]string{"note": s},
		}
		got := validateObjectMeta(m, true, apimachineryvalidation.NameIsDNSSubdomain)
		want := apimachineryvalidation.ValidateObjectMeta(m, true, apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
		if len(got) != len(want) {
			t.Errorf("label key %q: got %v, want %v", s, got, want)
			continue
		}
		for i := range got {
			if got[i].Error() != want[i].Error() {
				t.Errorf("label key %q: got %v, want %v", s, got[i], want[i])
			}
		}
	}
}

func FuzzFormat(f *testing.F) {
	for _, s := range formatSamples() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkFormat(t, "isDNS1123Label", s, isDNS1123Label(s), utilvalidation.IsDNS1123Label(s))
		checkFormat(t, "isDNS1123Subdomain", s, isDNS1123Subdomain(s), utilvalidation.IsDNS1123Subdomain(s))
		checkFormat(t, "isQualifiedName", s, isQualifiedName(s, false), utilvalidation.IsQualifiedName(s))
		checkFormat(t, "isLabelValue", s, isLabelValue(s), utilvalidation.IsValidLabelValue(s))
		if annotationsValid(map[string]string{s: ""}) {
			if errs := apimachineryvalidation.ValidateAnnotations(map[string]string{s: ""}, field.NewPath("a")); len(errs) > 0 {
				t.Errorf("annotationsValid(%q) = true, apimachinery says %v", s, errs)
			}
		}
	})
}
