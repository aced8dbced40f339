package reconcile

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNoScope is returned by Render when RenderOptions.Scope is nil.
var ErrNoScope = errors.New("render options: Scope is required")

// ErrNoSnapshot is returned by Render when it is given a nil snapshot.
var ErrNoSnapshot = errors.New("render: snapshot is nil")

// maxProblemsShown bounds how many problems RenderError.Error lists before
// it summarises the rest; Problems always holds all of them.
const maxProblemsShown = 20

// RenderError is the error Render returns when the snapshot has problems.
// It lists every problem found, so one push can fix them all; Render
// never returns objects together with a RenderError.
type RenderError struct {
	Problems []Problem
}

// Error lists the problems one per line, at most maxProblemsShown of
// them, followed by "and N more".
func (e *RenderError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	switch n {
	case 0:
		return "render: no problems"
	case 1:
		b.WriteString("render: 1 problem:")
	default:
		fmt.Fprintf(&b, "render: %d problems:", n)
	}
	for i, p := range e.Problems {
		if i == maxProblemsShown {
			fmt.Fprintf(&b, "\nand %d more", n-maxProblemsShown)
			break
		}
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Problem is one thing wrong with a snapshot. Messages never contain
// values from the snapshot (a Secret's data could be among them), only
// paths, field paths, kinds and names.
type Problem struct {
	// Path is the file in the snapshot. For kustomize output it is the
	// kustomization file of the directory that was built.
	Path string
	// Index is the 0-based index of the document within the file, counting
	// only non-empty documents (for kustomize output: the resource's
	// position in the build output). -1 means the problem is with the
	// whole file or build.
	Index int
	// Line is the 1-based line in Path the problem was found at, or 0 when
	// it is not known (JSON files, kustomize output, whole-file problems).
	Line int
	// Object names the object, like "Deployment demo/web" or "Namespace
	// demo"; empty when the document does not name one.
	Object string
	// Field is the field path within the object, like
	// "spec.template.spec.containers[0].image"; empty when the problem is
	// not with one field.
	Field string
	// Message says what is wrong.
	Message string
}

// String formats the problem as "path:line (document N): Object: field: message",
// leaving out the parts that are not known. N is 1-based, as people count.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Path)
	if p.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(p.Line))
	}
	if p.Index >= 0 {
		fmt.Fprintf(&b, " (document %d)", p.Index+1)
	}
	if p.Object != "" {
		b.WriteString(": ")
		b.WriteString(p.Object)
	}
	if p.Field != "" {
		b.WriteString(": ")
		b.WriteString(p.Field)
	}
	b.WriteString(": ")
	b.WriteString(p.Message)
	return b.String()
}
