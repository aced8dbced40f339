package reconcile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	yamlv3 "go.yaml.in/yaml/v3"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Limits on one file that keep a hostile file from exhausting memory or
// CPU. They are far above what hand-written or generated manifests need.
const (
	// maxDepth bounds the nesting of mappings and sequences in a document.
	// The YAML library stops at 10,000 but recursion that deep in every
	// later step (conversion, strict decoding, apply) is waste; the
	// deepest real manifests (CRD schemas) stay well under 100.
	maxDepth = 256
	// maxAliasNodes and maxAliasBytes bound how much YAML aliases may add
	// to a file once expanded (billion laughs, CVE-2019-11253): a file
	// without aliases is never limited by them.
	maxAliasNodes = 1 << 16
	maxAliasBytes = 1 << 20
)

// document is one non-empty document of a file, converted to JSON.
type document struct {
	index int
	// line is the 1-based line of the file the document starts at.
	line int
	json []byte
	// text is the YAML text of the document; nil for JSON files and
	// kustomize output.
	text []byte
	// node is the YAML node of the document's content, for mapping field
	// paths to lines; its lines are relative to line. It is parsed lazily
	// (see yamlNode) unless the document needed it to be checked.
	node   *yamlv3.Node
	parsed bool
}

// yamlNode returns the document's content node, parsing it on first use;
// nil when there is none. Documents that reach here without having been
// parsed have no anchors and passed the nesting pre-scan, so parsing them
// is safe.
func (d *document) yamlNode() *yamlv3.Node {
	if !d.parsed {
		d.parsed = true
		var root yamlv3.Node
		if d.text != nil && yamlv3.Unmarshal(d.text, &root) == nil && len(root.Content) > 0 {
			d.node = root.Content[0]
		}
	}
	return d.node
}

// fileLine maps a line of the document's node to a line of the file.
func (d *document) fileLine(nodeLine int) int {
	if d.text == nil || nodeLine <= 0 {
		return 0
	}
	return d.line + nodeLine - 1
}

// parseMode says what parseFile is for.
type parseMode int

const (
	// parseManifests converts every document to JSON and reports every
	// problem.
	parseManifests parseMode = iota
	// parseGuardOnly only checks that a file kustomize will read is not
	// hostile (binary, alias bombs, deep nesting). Syntax errors are left
	// to kustomize, which reports them if it reads the file as YAML at
	// all: a file can be plain data for a configMapGenerator.
	parseGuardOnly
)

// fileParser parses one file. It also records the values of Secrets it
// sees, so that no problem message can contain them.
type fileParser struct {
	path    string
	mode    parseMode
	secrets *secretSet
	guard   aliasGuard
}

// parseFile splits a file into documents. JSON files (by extension) are a
// stream of JSON values; everything else is multi-document YAML.
func parseFile(path string, data []byte, mode parseMode, secrets *secretSet) (docs []document, problems []Problem) {
	p := &fileParser{path: path, mode: mode, secrets: secrets}
	defer func() {
		// The YAML and JSON libraries panic on some internal errors; a
		// hostile file must not take the process down (RELIABILITY (b)9).
		if r := recover(); r != nil {
			docs = nil
			problems = append(problems, Problem{Path: path, Index: -1, Message: "the file could not be parsed (parser failure)"})
		}
	}()
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return nil, []Problem{{Path: path, Index: -1, Message: "not a text file: the content is not valid UTF-8"}}
	}
	if hasExt(path, ".json") {
		return p.parseJSON(data)
	}
	return p.parseYAML(data)
}

// chunk is the text of one YAML document and the line it starts at.
type chunk struct {
	text  []byte
	line  int
	empty bool
}

// splitYAML splits a YAML stream on "---" lines the way kubectl does: a
// separator line may be followed only by a comment. It also returns the
// lines of bad separators and of content after a "..." document end
// marker, which YAML parsers (and kubectl) silently drop: an object that
// disappears that way would be pruned.
func splitYAML(data []byte) (chunks []chunk, badSeparators, afterEnd []int) {
	start, startLine, line := 0, 1, 1
	empty, ended := true, false
	for off := 0; off < len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			end += off
			next = end + 1
		} else {
			end = len(data)
		}
		text := bytes.TrimRight(data[off:end], "\r")
		if rest, ok := bytes.CutPrefix(text, []byte("---")); ok {
			rest = bytes.TrimSpace(rest)
			if len(rest) == 0 || rest[0] == '#' {
				chunks = append(chunks, chunk{text: data[start:off], line: startLine, empty: empty})
				start, startLine, empty, ended = next, line+1, true, false
				off = next
				continue
			}
			badSeparators = append(badSeparators, line)
		}
		if rest, ok := bytes.CutPrefix(text, []byte("...")); ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t') {
			ended = true
			off = next
			continue
		}
		if t := bytes.TrimSpace(text); len(t) > 0 && t[0] != '#' {
			if ended {
				afterEnd = append(afterEnd, line)
				ended = false
			}
			empty = false
		}
		off = next
	}
	chunks = append(chunks, chunk{text: data[start:], line: startLine, empty: empty})
	return chunks, badSeparators, afterEnd
}

func (p *fileParser) parseYAML(data []byte) ([]document, []Problem) {
	chunks, badSeparators, afterEnd := splitYAML(data)
	if p.mode == parseGuardOnly {
		// kustomize splits documents its own way; these are for it to judge.
		badSeparators, afterEnd = nil, nil
	}
	var problems []Problem
	for _, l := range badSeparators {
		problems = append(problems, Problem{Path: p.path, Index: -1, Line: l,
			Message: "invalid document separator: only a comment may follow \"---\""})
	}
	for _, l := range afterEnd {
		problems = append(problems, Problem{Path: p.path, Index: -1, Line: l,
			Message: "content after a \"...\" document end marker would be ignored: separate documents with \"---\""})
	}
	var docs []document
	index := 0
	for _, c := range chunks {
		if c.empty {
			continue
		}
		doc, probs, fatal := p.parseYAMLDoc(c, index)
		problems = append(problems, probs...)
		if fatal {
			// An alias bomb or deep nesting: stop reading the file.
			return nil, problems
		}
		if doc != nil {
			docs = append(docs, *doc)
		}
		index++
	}
	return docs, problems
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// parseYAMLDoc parses one document. It returns fatal=true for problems
// that make reading the rest of the file pointless or dangerous.
//
// A document without anchors (no "&" anywhere) cannot contain aliases, so
// after the nesting pre-scan it goes straight to the JSON conversion; its
// YAML nodes, needed only to put a line on a problem, are parsed when
// asked for. A document with anchors is parsed to nodes first and
// measured by the alias guard before anything expands it.
func (p *fileParser) parseYAMLDoc(c chunk, index int) (doc *document, problems []Problem, fatal bool) {
	if l, ok := yamlNestingExceeded(c.text); ok {
		return nil, []Problem{{Path: p.path, Index: index, Line: c.line + l - 1,
			Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}}, true
	}
	d := &document{index: index, line: c.line, text: c.text}
	if p.mode == parseGuardOnly || bytes.IndexByte(c.text, '&') >= 0 {
		problems, fatal = p.parseNode(d)
		if p.mode == parseGuardOnly && !fatal {
			// Syntax errors and duplicate keys are kustomize's to report (see
			// parseGuardOnly). The document is returned even when this parser
			// failed: the kustomization checks decode the text with the parser
			// kustomize uses, which may accept what this one does not.
			return d, nil, false
		}
		if len(problems) > 0 || fatal || d.node == nil {
			return nil, problems, fatal
		}
	}
	// The conversion uses the same YAML 1.1 rules as kubectl (sigs.k8s.io/yaml
	// over yaml.v2), so "on" or "0777" mean what they mean to kubectl.
	j, err := yaml.YAMLToJSONStrict(c.text)
	if err != nil {
		if !d.parsed {
			// The node parser names duplicate keys by field path and reports
			// syntax errors with better lines.
			if problems, fatal = p.parseNode(d); len(problems) > 0 || fatal {
				return nil, problems, fatal
			}
		}
		line, msg := yamlErrorLine(err, c.line)
		return nil, []Problem{{Path: p.path, Index: index, Line: line, Message: "YAML error: " + msg}}, false
	}
	if _, deep := jsonDepthExceeded(j); deep {
		return nil, []Problem{{Path: p.path, Index: index, Line: c.line,
			Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}}, true
	}
	d.json = j
	return d, nil, false
}

// parseNode parses a document's YAML nodes and runs the alias guard on
// them, reporting syntax errors, duplicate keys and hostile structure.
// d.node stays nil for an empty document.
func (p *fileParser) parseNode(d *document) (problems []Problem, fatal bool) {
	d.parsed = true
	var root yamlv3.Node
	if err := yamlv3.Unmarshal(d.text, &root); err != nil {
		line, msg := yamlErrorLine(err, d.line)
		return []Problem{{Path: p.path, Index: d.index, Line: line, Message: "YAML syntax error: " + msg}}, false
	}
	if len(root.Content) == 0 {
		return nil, false
	}
	content := root.Content[0]
	dups, gerr := p.guard.check(content)
	if gerr != nil {
		return []Problem{{Path: p.path, Index: d.index, Line: d.line + gerr.line - 1, Field: gerr.field, Message: gerr.msg}}, true
	}
	d.node = content
	p.secrets.addFromNode(content)
	for _, dup := range dups {
		problems = append(problems, Problem{Path: p.path, Index: d.index, Line: d.fileLine(dup.line),
			Object: nodeLabel(content), Field: dup.field, Message: "duplicate field"})
	}
	return problems, false
}

// nodeLabel is objectLabel for a document that could not be decoded.
func nodeLabel(n *yamlv3.Node) string {
	md := mappingValue(n, "metadata")
	kind, name, ns := mappingScalar(n, "kind"), mappingScalar(md, "name"), mappingScalar(md, "namespace")
	switch {
	case name == "":
		return ""
	case kind == "":
		kind = "object"
	}
	if ns != "" {
		return kind + " " + ns + "/" + name
	}
	return kind + " " + name
}

// yamlErrorLine turns a YAML library error about a document starting at
// docLine into a file line and a message without values.
func yamlErrorLine(err error, docLine int) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
		if n, convErr := strconv.Atoi(msg[m[2]:m[3]]); convErr == nil {
			line = docLine + n - 1
		}
		// "line N: did not find expected key" reads better without the
		// document-relative line number, which would be wrong in the file.
		msg = strings.TrimLeft(msg[:m[0]]+msg[m[1]:], ": ")
	}
	return line, redactQuoted(firstLine(msg))
}

func (p *fileParser) parseJSON(data []byte) ([]document, []Problem) {
	if off, ok := jsonDepthExceeded(data); ok {
		return nil, []Problem{{Path: p.path, Index: -1, Line: lineAt(data, off),
			Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []document
	for index := 0; ; index++ {
		start := skipSpace(data, int(dec.InputOffset()))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			line := 0
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line = lineAt(data, int(se.Offset))
			}
			if p.mode == parseGuardOnly {
				return nil, nil
			}
			msg := strings.TrimPrefix(err.Error(), "json: ")
			if errors.Is(err, io.ErrUnexpectedEOF) {
				msg = "unexpected end of input"
			}
			return nil, []Problem{{Path: p.path, Index: index, Line: line, Message: "JSON syntax error: " + redactQuoted(msg)}}
		}
		var v any
		if sjson.UnmarshalCaseSensitivePreserveInts(raw, &v) == nil {
			p.secrets.addFromValue(v)
		}
		if p.mode == parseManifests && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			docs = append(docs, document{index: index, line: lineAt(data, start), json: raw})
		}
	}
	return docs, nil
}

// jsonDepthExceeded reports whether JSON text nests deeper than maxDepth,
// and the offset where it does. It runs before any decoding, in one pass
// and without recursion.
func jsonDepthExceeded(data []byte) (int, bool) {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return i, true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return 0, false
}

// preScanDepth is the nesting yamlNestingExceeded refuses. It is above
// maxDepth because the scan only estimates: the exact check runs on the
// parsed nodes. Its job is to keep the YAML parser, which recurses once per
// level and is several times slower per byte on deep input, from ever
// seeing thousands of levels.
const preScanDepth = 4 * maxDepth

// yamlNestingExceeded estimates, in one pass over the text, whether a YAML
// document nests deeper than preScanDepth through flow collections
// ("[[[[", "{a: {a: ") or compact sequences ("- - - -"), and returns the
// 1-based line where it does. Brackets in quotes and comments are not
// counted; quote tracking ends at each line end, which can only make the
// estimate miss (the node check still runs), and a false alarm would need
// a thousand unclosed brackets.
func yamlNestingExceeded(text []byte) (int, bool) {
	depth, line := 0, 1
	var quote byte
	lineStart := true
	dashes := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' {
			line++
			quote, lineStart, dashes = 0, true, 0
			continue
		}
		if quote != 0 {
			switch {
			case quote == '"' && c == '\\':
				i++
			case c == quote:
				quote = 0
			}
			continue
		}
		switch c {
		case ' ', '\t':
			continue
		case '-':
			if lineStart && (i+1 == len(text) || text[i+1] == ' ' || text[i+1] == '\n') {
				if dashes++; depth+dashes > preScanDepth {
					return line, true
				}
				continue
			}
		case '#':
			if i == 0 || text[i-1] == ' ' || text[i-1] == '\t' || text[i-1] == '\n' {
				for i+1 < len(text) && text[i+1] != '\n' {
					i++
				}
				continue
			}
		case '"', '\'':
			quote = c
		case '[', '{':
			if depth++; depth+dashes > preScanDepth {
				return line, true
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
		lineStart = false
	}
	return 0, false
}

func skipSpace(data []byte, off int) int {
	for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\n' || data[off] == '\r') {
		off++
	}
	return off
}

// lineAt is the 1-based line of byte offset off.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return bytes.Count(data[:off], []byte("\n")) + 1
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

var quotedRE = regexp.MustCompile("\"(?:[^\"\\\\\\n]|\\\\.)*\"|`[^`\\n]*`|'[^'\\n]*'|\\bnumber [^ ,:]+")

// redactQuoted removes quoted text from a library's error message: the
// libraries quote the values they failed on, and a value can be a secret.
func redactQuoted(msg string) string {
	return quotedRE.ReplaceAllStringFunc(msg, func(s string) string {
		if strings.HasPrefix(s, "number ") {
			return "number"
		}
		return s[:1] + "…" + s[:1]
	})
}
