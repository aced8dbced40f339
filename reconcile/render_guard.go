package reconcile

import (
	"fmt"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// nodeSize is the size of a YAML subtree with its aliases expanded.
type nodeSize struct {
	nodes, bytes, height int
}

// aliasGuard measures YAML node trees before anything expands their
// aliases, so that an alias bomb or deep nesting is refused in time linear
// in the file's size. One guard serves all documents of a file: the alias
// budget is per file.
type aliasGuard struct {
	memo       map[*yamlv3.Node]nodeSize
	inProgress map[*yamlv3.Node]bool
	aliasNodes int
	aliasBytes int
	duplicates []fieldAt
	// path is the field path of the node being walked, as segments; it is
	// joined only when a problem needs it.
	path []pathSeg
}

// pathSeg is one step of a field path: a mapping key or a list index.
type pathSeg struct {
	key   string
	index int // -1 for a key
}

// field joins the current path: "spec.containers[0].image".
func (g *aliasGuard) field() string {
	var b strings.Builder
	for _, s := range g.path {
		if s.index >= 0 {
			b.WriteString("[")
			b.WriteString(strconv.Itoa(s.index))
			b.WriteString("]")
			continue
		}
		if b.Len() > 0 {
			b.WriteString(".")
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// fieldAt is a field path and the node line it is at.
type fieldAt struct {
	field string
	line  int
}

// guardError is a problem that stops reading the file.
type guardError struct {
	field string
	line  int
	msg   string
}

// check walks the tree of a document's content node. It returns the
// duplicate mapping keys it found, or a guardError when the document nests
// deeper than maxDepth, refers to itself, or its aliases expand beyond the
// file's budget.
func (g *aliasGuard) check(n *yamlv3.Node) ([]fieldAt, *guardError) {
	if g.memo == nil {
		g.memo = map[*yamlv3.Node]nodeSize{}
		g.inProgress = map[*yamlv3.Node]bool{}
	}
	g.duplicates, g.path = nil, g.path[:0]
	if _, err := g.walk(n, 1); err != nil {
		return nil, err
	}
	return g.duplicates, nil
}

func (g *aliasGuard) fail(n *yamlv3.Node, msg string) (nodeSize, *guardError) {
	return nodeSize{}, &guardError{field: shortField(g.field()), line: n.Line, msg: msg}
}

func (g *aliasGuard) walk(n *yamlv3.Node, depth int) (nodeSize, *guardError) {
	if depth > maxDepth {
		return g.fail(n, fmt.Sprintf("nested deeper than %d levels", maxDepth))
	}
	switch n.Kind {
	case yamlv3.AliasNode:
		t := n.Alias
		if t == nil {
			return g.fail(n, "alias to an unknown anchor")
		}
		if g.inProgress[t] {
			return g.fail(n, "alias refers to a node that contains it")
		}
		s, ok := g.memo[t]
		if !ok {
			var err *guardError
			if s, err = g.walk(t, depth); err != nil {
				return nodeSize{}, err
			}
		}
		if depth+s.height-1 > maxDepth {
			return g.fail(n, fmt.Sprintf("nested deeper than %d levels (through an alias)", maxDepth))
		}
		g.aliasNodes = satAdd(g.aliasNodes, s.nodes)
		g.aliasBytes = satAdd(g.aliasBytes, s.bytes)
		if g.aliasNodes > maxAliasNodes || g.aliasBytes > maxAliasBytes {
			return g.fail(n, fmt.Sprintf("YAML aliases expand to more than %d nodes or %d bytes (alias bomb?)", maxAliasNodes, maxAliasBytes))
		}
		return s, nil
	case yamlv3.ScalarNode:
		s := nodeSize{nodes: 1, bytes: len(n.Value) + 1, height: 1}
		if n.Anchor != "" {
			g.memo[n] = s
		}
		return s, nil
	}
	// Only anchored nodes can be the target of an alias, so only they are
	// remembered: a large file without anchors costs no memory here.
	if n.Anchor != "" {
		g.inProgress[n] = true
		defer delete(g.inProgress, n)
	}
	s := nodeSize{nodes: 1, bytes: 2, height: 1}
	add := func(c nodeSize) {
		s.nodes = satAdd(s.nodes, c.nodes)
		s.bytes = satAdd(s.bytes, c.bytes)
		s.height = max(s.height, c.height+1)
	}
	switch n.Kind {
	case yamlv3.MappingNode:
		var seen map[string]bool
		if len(n.Content) > 2*smallMapping {
			seen = make(map[string]bool, len(n.Content)/2)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ks, err := g.walk(k, depth+1)
			if err != nil {
				return nodeSize{}, err
			}
			add(ks)
			g.path = append(g.path, pathSeg{key: k.Value, index: -1})
			if k.Kind == yamlv3.ScalarNode && k.Value != "<<" {
				dup := false
				if seen != nil {
					dup = seen[k.Value]
					seen[k.Value] = true
				} else {
					dup = keyBefore(n.Content, i)
				}
				if dup {
					g.duplicates = append(g.duplicates, fieldAt{field: g.field(), line: k.Line})
				}
			}
			vs, err := g.walk(v, depth+1)
			if err != nil {
				return nodeSize{}, err
			}
			g.path = g.path[:len(g.path)-1]
			add(vs)
		}
	default: // sequences and documents
		for i, c := range n.Content {
			if n.Kind == yamlv3.SequenceNode {
				g.path = append(g.path, pathSeg{index: i})
			}
			cs, err := g.walk(c, depth+1)
			if err != nil {
				return nodeSize{}, err
			}
			if n.Kind == yamlv3.SequenceNode {
				g.path = g.path[:len(g.path)-1]
			}
			add(cs)
		}
	}
	if n.Anchor != "" {
		g.memo[n] = s
	}
	return s, nil
}

// smallMapping is the size up to which duplicate keys are found by
// scanning instead of with a set: most mappings are small.
const smallMapping = 16

// keyBefore reports whether the scalar key at content[i] of a mapping
// appeared before it.
func keyBefore(content []*yamlv3.Node, i int) bool {
	key := content[i].Value
	for j := 0; j < i; j += 2 {
		if content[j].Kind == yamlv3.ScalarNode && content[j].Value == key {
			return true
		}
	}
	return false
}

// shortField shortens the field path of a deeply nested node.
func shortField(path string) string {
	const maxLen = 64
	if len(path) <= maxLen {
		return path
	}
	return path[:maxLen] + "…"
}

func satAdd(a, b int) int {
	const limit = 1 << 62
	if a > limit-b {
		return limit
	}
	return a + b
}

// joinField appends a mapping key to a field path.
func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodeLine finds the line of a field path like "spec.containers[0].image"
// in a YAML node tree; it returns the line of the deepest node it could
// follow the path to, or 0. Keys may contain dots, so at each mapping it
// tries the longest run of segments that names a key.
func nodeLine(n *yamlv3.Node, field string) int {
	if n == nil {
		return 0
	}
	return followPath(n, splitField(field), 0)
}

func followPath(n *yamlv3.Node, segs []string, budget int) int {
	for n.Kind == yamlv3.AliasNode && n.Alias != nil && budget < maxDepth {
		n = n.Alias
		budget++
	}
	if len(segs) == 0 || budget > maxDepth {
		return n.Line
	}
	switch n.Kind {
	case yamlv3.SequenceNode:
		if i, ok := strings.CutPrefix(segs[0], "["); ok {
			idx, err := strconv.Atoi(strings.TrimSuffix(i, "]"))
			if err == nil && idx >= 0 && idx < len(n.Content) {
				return followPath(n.Content[idx], segs[1:], budget+1)
			}
		}
	case yamlv3.MappingNode:
		for j := len(segs); j >= 1; j-- {
			key := strings.Join(segs[:j], ".")
			if strings.Contains(key, "[") && j > 1 {
				continue
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					if line := followPath(n.Content[i+1], segs[j:], budget+1); line > 0 && len(segs[j:]) > 0 {
						return line
					}
					return n.Content[i].Line
				}
			}
		}
	}
	return n.Line
}

// splitField splits "a.b[0].c" into "a", "b", "[0]", "c".
func splitField(field string) []string {
	var segs []string
	for _, part := range strings.Split(field, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			switch {
			case i < 0:
				segs = append(segs, part)
				part = ""
			case i > 0:
				segs = append(segs, part[:i])
				part = part[i:]
			default:
				j := strings.IndexByte(part, ']')
				if j < 0 {
					segs = append(segs, part)
					part = ""
					continue
				}
				segs = append(segs, part[:j+1])
				part = part[j+1:]
			}
		}
	}
	return segs
}
