package reconcile

import (
	"encoding/base64"
	"slices"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// minSecretLen is the shortest secret value that is redacted from
// messages. Shorter values would turn common words into "[redacted]"
// and a leak of a value that short gives little away.
const minSecretLen = 4

// secretSet collects the values of Secrets (and of kustomize secret
// generators) seen in a snapshot, so that no problem message can contain
// one even when a library echoes it (RELIABILITY promise 15, CVE-2025-23216).
// It is a second line of defence: messages are built from field paths and
// kinds, and library messages have their quoted text removed first.
type secretSet struct {
	values map[string]struct{}
}

func newSecretSet() *secretSet {
	return &secretSet{values: map[string]struct{}{}}
}

// add records a value, each of its lines, and, when it is valid base64,
// what it decodes to.
func (s *secretSet) add(v string) {
	if s == nil {
		return
	}
	s.addText(v)
	if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err == nil {
		s.addText(string(b))
	}
}

func (s *secretSet) addText(v string) {
	if v = strings.TrimSpace(v); len(v) < minSecretLen {
		return
	}
	s.values[v] = struct{}{}
	if strings.Contains(v, "\n") {
		for _, l := range strings.Split(v, "\n") {
			if l = strings.TrimSpace(l); len(l) >= minSecretLen {
				s.values[l] = struct{}{}
			}
		}
	}
}

// addLiteral records a kustomize "key=value" literal.
func (s *secretSet) addLiteral(lit string) {
	if _, v, ok := strings.Cut(lit, "="); ok {
		s.add(v)
	}
	s.add(lit)
}

// addFromNode records the data and stringData values of a Secret, of the
// items of a List, and the literals of a kustomization's secretGenerator.
func (s *secretSet) addFromNode(n *yamlv3.Node) {
	if s == nil || n == nil || n.Kind != yamlv3.MappingNode {
		return
	}
	kind := mappingScalar(n, "kind")
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		switch {
		case kind == "Secret" && (k == "data" || k == "stringData"):
			if v.Kind == yamlv3.MappingNode {
				for j := 1; j < len(v.Content); j += 2 {
					s.add(v.Content[j].Value)
				}
			}
		case k == "items" && v.Kind == yamlv3.SequenceNode:
			for _, item := range v.Content {
				s.addFromNode(item)
			}
		case k == "secretGenerator" && v.Kind == yamlv3.SequenceNode:
			for _, gen := range v.Content {
				if lits := mappingValue(gen, "literals"); lits != nil {
					for _, l := range lits.Content {
						s.addLiteral(l.Value)
					}
				}
			}
		case k == "literals" && kind == "SecretGenerator" && v.Kind == yamlv3.SequenceNode:
			for _, l := range v.Content {
				s.addLiteral(l.Value)
			}
		}
	}
}

// addFromValue is addFromNode for decoded JSON.
func (s *secretSet) addFromValue(v any) {
	m, ok := v.(map[string]any)
	if s == nil || !ok {
		return
	}
	if m["kind"] == "Secret" {
		for _, f := range []string{"data", "stringData"} {
			if d, ok := m[f].(map[string]any); ok {
				for _, x := range d {
					if str, ok := x.(string); ok {
						s.add(str)
					}
				}
			}
		}
	}
	if items, ok := m["items"].([]any); ok {
		for _, it := range items {
			s.addFromValue(it)
		}
	}
}

// redactor returns a function that replaces every recorded value in a
// message. Longer values go first so that a value containing another is
// replaced whole.
func (s *secretSet) redactor() func(string) string {
	if len(s.values) == 0 {
		return func(m string) string { return m }
	}
	vals := make([]string, 0, len(s.values))
	for v := range s.values {
		vals = append(vals, v)
	}
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(vals))
	for _, v := range vals {
		pairs = append(pairs, v, "[redacted]")
	}
	r := strings.NewReplacer(pairs...)
	return r.Replace
}

// mappingValue is the value of key in a YAML mapping node, or nil.
func mappingValue(n *yamlv3.Node, key string) *yamlv3.Node {
	if n == nil || n.Kind != yamlv3.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// mappingScalar is the scalar value of key in a YAML mapping node, or "".
func mappingScalar(n *yamlv3.Node, key string) string {
	if v := mappingValue(n, key); v != nil && v.Kind == yamlv3.ScalarNode {
		return v.Value
	}
	return ""
}
