package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/components/store"
)

const (
	patchJSON      = "application/json-patch+json"
	patchMerge     = "application/merge-patch+json"
	patchStrategic = "application/strategic-merge-patch+json"
	patchApply     = "application/apply-patch+yaml"
	patchApplyJSON = "application/apply-patch+json"
)

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo, sub string) {
	dry, err := dryRun(r)
	if err != nil {
		writeError(w, err)
		return
	}
	opts, err := fieldValidation(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ct := contentType(r)
	switch ct {
	case patchJSON, patchMerge, patchApply, patchApplyJSON:
	case patchStrategic:
		if !res.typed {
			writeError(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", res.gr, ri.name,
				"strategic merge patch is not supported for "+res.gr.String()+"; use a JSON merge patch", 0, false))
			return
		}
	default:
		writeError(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", res.gr, ri.name,
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s", patchJSON, patchMerge, patchStrategic, patchApply), 0, false))
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, err)
		return
	}
	apply := ct == patchApply || ct == patchApplyJSON
	if apply && r.URL.Query().Get("fieldManager") == "" {
		writeError(w, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "PatchOptions"}, "",
			field.ErrorList{field.Required(field.NewPath("fieldManager"), "is required for apply patch")}))
		return
	}
	patch, err := bodyToJSON(map[bool]string{true: mimeYAML, false: ct}[apply], body)
	if err != nil {
		writeError(w, err)
		return
	}
	if apply && sub == "" {
		if _, err := s.store.Get(r.Context(), res.key(ri.namespace, ri.name)); errors.Is(err, store.ErrNotFound) {
			s.applyCreate(w, r, res, ri, patch, opts, dry)
			return
		}
	}
	// A patch that names a resourceVersion is a precondition; any other
	// patch is retried on a lost race, as kube does.
	retry := !bytes.Contains(patch, []byte(`"resourceVersion"`))
	var warnings []string
	out, _, err := s.update(r.Context(), res, ri.namespace, ri.name, sub, dry, retry, func(old runtime.Object) (runtime.Object, error) {
		orig, err := json.Marshal(old)
		if err != nil {
			return nil, err
		}
		patched, err := applyPatch(ct, orig, patch, old)
		if err != nil {
			return nil, err
		}
		obj := res.newObject()
		warnings, err = decodeJSON(patched, obj, res.GroupVersionKind(), opts)
		if err != nil {
			return nil, err
		}
		if accessor(obj).GetName() != ri.name {
			return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", accessor(obj).GetName(), ri.name)
		}
		if err := checkNamespace(res, accessor(obj), ri.namespace); err != nil {
			return nil, err
		}
		return obj, nil
	})
	if err != nil {
		writeError(w, err)
		return
	}
	addWarnings(w, warnings)
	writeObject(w, r, http.StatusOK, out, nil)
}

// applyPatch applies one patch document to the JSON of the current object.
// Server-side apply merges the applied configuration into the object like
// a strategic merge patch (JSON merge for kinds without a Go type): it
// never replaces fields the configuration does not mention.
func applyPatch(ct string, orig, patch []byte, schemaObj runtime.Object) ([]byte, error) {
	// A patch that is not a patch is the client's mistake (400, as kube);
	// one that does not fit the object is 422.
	if !json.Valid(patch) {
		var v any
		return nil, badRequest("the patch is not valid JSON: %v", jsonErr(json.Unmarshal(patch, &v)))
	}
	var out []byte
	var err error
	switch ct {
	case patchJSON:
		var p jsonpatch.Patch
		p, err = jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, badRequest("the JSON patch is not a list of operations: %v", err)
		}
		out, err = p.Apply(orig)
	default:
		if t := bytes.TrimSpace(patch); t[0] != '{' {
			return nil, badRequest("the patch must be a JSON object, not %s", jsonKind(t))
		}
		if ct == patchMerge {
			out, err = jsonpatch.MergePatch(orig, patch)
		} else if _, ok := schemaObj.(interface{ UnstructuredContent() map[string]any }); ok {
			out, err = jsonpatch.MergePatch(orig, patch)
		} else {
			out, err = strategicpatch.StrategicMergePatch(orig, patch, schemaObj)
		}
	}
	if err != nil {
		// Not NewGenericServerResponse: it drops the message for 422.
		return nil, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusUnprocessableEntity,
			Reason: metav1.StatusReasonInvalid, Message: "the patch could not be applied: " + err.Error()}}
	}
	return out, nil
}

// applyCreate is server-side apply of an object that does not exist yet:
// the configuration is created as is (201).
func (s *Server) applyCreate(w http.ResponseWriter, r *http.Request, res *resource, ri requestInfo, patch []byte, opts decodeOptions, dry bool) {
	obj := res.newObject()
	warnings, err := decodeJSON(patch, obj, res.GroupVersionKind(), opts)
	if err != nil {
		writeError(w, err)
		return
	}
	m := accessor(obj)
	if m.GetName() != ri.name {
		writeError(w, badRequest("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), ri.name))
		return
	}
	if err := checkNamespace(res, m, ri.namespace); err != nil {
		writeError(w, err)
		return
	}
	m.SetResourceVersion("")
	out, stored, err := s.create(r.Context(), res, obj, dry)
	if err != nil {
		writeError(w, err)
		return
	}
	addWarnings(w, warnings)
	writeObject(w, r, http.StatusCreated, out, stored)
}
