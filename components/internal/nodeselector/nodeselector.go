// Package nodeselector evaluates a NodeSelector against a Node, as kube's
// component-helpers do for node affinity: the scheduler, the DaemonSet
// controller and the PersistentVolume controller ask the same question.
package nodeselector

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// Matches reports whether node satisfies sel: its terms are ORed, and a
// selector without terms matches nothing.
func Matches(sel *corev1.NodeSelector, node *corev1.Node) bool {
	for i := range sel.NodeSelectorTerms {
		if TermMatches(&sel.NodeSelectorTerms[i], node) {
			return true
		}
	}
	return false
}

// TermMatches ANDs a term's expressions and fields; an empty term matches
// nothing, as in kube.
func TermMatches(t *corev1.NodeSelectorTerm, node *corev1.Node) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for i := range t.MatchExpressions {
		if !requirementMatches(&t.MatchExpressions[i], node.Labels) {
			return false
		}
	}
	for i := range t.MatchFields {
		f := &t.MatchFields[i]
		// metadata.name is the one field kube supports.
		if f.Key != "metadata.name" || !requirementMatches(f, map[string]string{"metadata.name": node.Name}) {
			return false
		}
	}
	return true
}

// requirementMatches evaluates In, NotIn, Exists, DoesNotExist, Gt and Lt
// as labels.Requirement does: NotIn and DoesNotExist hold for a missing
// label; Gt and Lt compare integers and fail on anything else.
func requirementMatches(r *corev1.NodeSelectorRequirement, l map[string]string) bool {
	v, ok := l[r.Key]
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return ok && slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !ok || len(r.Values) != 1 {
			return false
		}
		have, err1 := strconv.ParseInt(v, 10, 64)
		want, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return have > want
		}
		return have < want
	}
	return false
}
