package reconcile

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	apipath "k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	sjson "sigs.k8s.io/json"
)

// validate checks one candidate and defaults its namespace. It returns the
// object when it is well-formed enough to have a key (for duplicate
// detection), and ok=true when it has no problem at all.
func (r *renderer) validate(c *candidate) (u *unstructured.Unstructured, ok bool) {
	type issue struct{ field, msg string }
	var issues []issue
	add := func(field, msg string) { issues = append(issues, issue{field, msg}) }
	u = &unstructured.Unstructured{Object: c.obj}
	defer func() {
		if p := recover(); p != nil {
			issues = append(issues, issue{"", "the object could not be validated (internal error)"})
			u = nil
		}
		// c.obj holds the defaulted namespace too: u shares it.
		label := objectLabel(&unstructured.Unstructured{Object: c.obj})
		for _, is := range issues {
			r.problems = append(r.problems, Problem{Path: c.path, Index: c.doc.index, Line: c.fieldLine(is.field),
				Object: label, Field: is.field, Message: is.msg})
		}
		ok = ok && len(issues) == 0
	}()

	apiVersion, avOK := requiredString(c.obj, "apiVersion", add)
	kind, kOK := requiredString(c.obj, "kind", add)
	var gv schema.GroupVersion
	if avOK {
		var err error
		if gv, err = schema.ParseGroupVersion(apiVersion); err != nil || gv.Version == "" {
			add("apiVersion", "invalid: must be \"<group>/<version>\" or \"v1\"")
			avOK = false
		}
	}
	name, nameOK := r.checkMetadata(c.obj, add)
	if !avOK || !kOK {
		return nil, false
	}
	gvk := gv.WithKind(kind)
	c.gvk = gvk

	if gv.Group == kilnGroup || (gvk.GroupKind() == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) && definesKilnKind(u)) {
		add("", "managed by kiln itself: objects of group "+kilnGroup+" cannot come from a source")
	}

	namespaced, known := r.scope(gvk)
	ns := u.GetNamespace()
	switch {
	case !known:
		add("", fmt.Sprintf("no kind %q is served by the cluster for apiVersion %q", kind, apiVersion))
	case namespaced && ns == "":
		u.SetNamespace(r.opts.DefaultNamespace)
	case !namespaced && ns != "":
		add("metadata.namespace", "must not be set: "+kind+" is cluster-scoped")
	}

	if known {
		r.strictDecode(c, gvk, add)
	}
	if !nameOK || name == "" {
		return nil, false
	}
	return u, true
}

// requiredString reads a required top-level string field.
func requiredString(obj map[string]any, field string, add func(string, string)) (string, bool) {
	v, present := obj[field]
	s, isString := v.(string)
	switch {
	case !present || v == nil || (isString && s == ""):
		add(field, "required")
	case !isString:
		add(field, "must be a string")
	default:
		return s, true
	}
	return "", false
}

// checkMetadata checks metadata.name, generateName and namespace, and
// returns the name.
func (r *renderer) checkMetadata(obj map[string]any, add func(string, string)) (string, bool) {
	raw, present := obj["metadata"]
	md, isMap := raw.(map[string]any)
	if present && raw != nil && !isMap {
		add("metadata", "must be a mapping")
		return "", false
	}
	if _, ok := md["generateName"]; ok {
		add("metadata.generateName", "not allowed: objects synced from a source need a fixed metadata.name")
	}
	name, nameOK := "", false
	switch v := md["name"].(type) {
	case nil:
		add("metadata.name", "required")
	case string:
		if v == "" {
			add("metadata.name", "required")
			break
		}
		if msgs := apipath.IsValidPathSegmentName(v); len(msgs) > 0 {
			add("metadata.name", "invalid: may not be \".\" or \"..\" or contain \"/\" or \"%\"")
			break
		}
		name, nameOK = v, true
	default:
		add("metadata.name", "must be a string")
	}
	switch v := md["namespace"].(type) {
	case nil:
	case string:
		if v == "" {
			break
		}
		if msgs := validation.IsDNS1123Label(v); len(msgs) > 0 {
			add("metadata.namespace", "invalid: "+strings.Join(msgs, "; "))
			nameOK = false
		}
	default:
		add("metadata.namespace", "must be a string")
		nameOK = false
	}
	return name, nameOK
}

// definesKilnKind reports whether a CRD would define a kind in kiln's
// own group.
func definesKilnKind(u *unstructured.Unstructured) bool {
	group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
	return group == kilnGroup || strings.HasSuffix(u.GetName(), "."+kilnGroup)
}

// strictDecode decodes the object into its Go type, when client-go knows
// the kind, refusing unknown and duplicate fields as the API server's
// strict field validation does (RELIABILITY (b)20). For other kinds only
// metadata is checked, against ObjectMeta.
func (r *renderer) strictDecode(c *candidate, gvk schema.GroupVersionKind, add func(string, string)) {
	if scheme.Scheme.Recognizes(gvk) {
		typed, err := scheme.Scheme.New(gvk)
		if err == nil {
			strictErrs, err := strictUnmarshal(c.json, typed)
			if err != nil {
				add(valueError(err, c.obj))
			}
			for _, se := range strictErrs {
				add(strictProblem(se, ""))
			}
			return
		}
	}
	md, ok := c.obj["metadata"].(map[string]any)
	if !ok {
		return
	}
	j, err := json.Marshal(md)
	if err != nil {
		return
	}
	strictErrs, err := strictUnmarshal(j, &metav1.ObjectMeta{})
	if err != nil {
		field, msg := valueError(err, md)
		if field != "" {
			field = "metadata." + field
		}
		add(field, msg)
	}
	for _, se := range strictErrs {
		add(strictProblem(se, "metadata"))
	}
}

// strictUnmarshal decodes JSON refusing unknown and duplicate fields.
func strictUnmarshal(data []byte, v any) ([]error, error) {
	return sjson.UnmarshalStrict(data, v, sjson.DisallowUnknownFields, sjson.DisallowDuplicateFields)
}

// strictProblem turns a strict decoding error into a field and message.
// prefix is prepended to the field path.
func strictProblem(err error, prefix string) (string, string) {
	var fe sjson.FieldError
	if !errors.As(err, &fe) {
		return prefix, redactQuoted(firstLine(err.Error()))
	}
	msg := "unknown field"
	if strings.HasPrefix(err.Error(), "duplicate field") {
		msg = "duplicate field"
	}
	return joinField(prefix, fe.FieldPath()), msg
}

// valueError turns a decoding error into a field and a message without the
// value: the JSON decoder's type errors carry the value ("number 31337"),
// and so do the errors of types that decode themselves (times, for one).
// sigs.k8s.io/json's UnmarshalTypeError is in an internal package, so its
// fields are read by name.
func valueError(err error, obj map[string]any) (string, string) {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && !v.IsNil() && v.Elem().Kind() == reflect.Struct && v.Elem().Type().Name() == "UnmarshalTypeError" {
		e := v.Elem()
		field := structString(e, "Field")
		got, _, _ := strings.Cut(structString(e, "Value"), " ")
		want := "another type"
		if t, ok := structValue(e, "Type").(reflect.Type); ok && t != nil {
			want = jsonTypeName(t)
		}
		if field != "" {
			if full, ok := resolveIndices(obj, splitField(field), got, ""); ok {
				field = full
			}
		}
		return field, fmt.Sprintf("invalid value: expected %s, got %s", want, got)
	}
	// Values that decode themselves fail without a field path; find the
	// value that fails the same way.
	var pe *time.ParseError
	if errors.As(err, &pe) {
		if field, ok := findString(obj, "", func(_, s string) bool { return s == pe.Value }); ok {
			return field, "invalid value: not a time in RFC 3339 format (like 2006-01-02T15:04:05Z)"
		}
		return "", "invalid value: not a time in RFC 3339 format (like 2006-01-02T15:04:05Z)"
	}
	if errors.Is(err, resource.ErrFormatWrong) || errors.Is(err, resource.ErrSuffix) || errors.Is(err, resource.ErrNumeric) {
		field, _ := findString(obj, "", func(field, s string) bool {
			_, perr := resource.ParseQuantity(s)
			return perr != nil && isQuantityField(field)
		})
		return field, "invalid value: not a quantity (like 500m, 128Mi or 2)"
	}
	var b64 base64.CorruptInputError
	if errors.As(err, &b64) {
		// []byte fields (a Secret's data, a ConfigMap's binaryData) fail
		// without a field path: find the value that is not base64.
		for _, f := range []string{"data", "binaryData"} {
			m, _ := obj[f].(map[string]any)
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if s, ok := m[k].(string); ok {
					if _, err := base64.StdEncoding.DecodeString(s); err != nil {
						return f + "." + k, "invalid value: not valid base64"
					}
				}
			}
		}
	}
	return "", "invalid value: " + redactQuoted(firstLine(err.Error()))
}

// quantityParents are the fields whose values are maps of quantities.
var quantityParents = []string{"limits", "requests", "capacity", "allocatable", "hard", "overhead", "podFixed"}

// isQuantityField reports whether a field path names a quantity: a value
// of one of quantityParents, or a sizeLimit.
func isQuantityField(field string) bool {
	segs := splitField(field)
	if len(segs) == 0 {
		return false
	}
	if segs[len(segs)-1] == "sizeLimit" {
		return true
	}
	return len(segs) >= 2 && slices.Contains(quantityParents, segs[len(segs)-2])
}

// findString returns the path of the first string value in v (maps in key
// order) that match accepts.
func findString(v any, prefix string, match func(field, s string) bool) (string, bool) {
	switch x := v.(type) {
	case string:
		return prefix, match(prefix, x)
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if p, ok := findString(x[k], joinField(prefix, k), match); ok {
				return p, true
			}
		}
	case []any:
		for i, it := range x {
			if p, ok := findString(it, prefix+"["+strconv.Itoa(i)+"]", match); ok {
				return p, true
			}
		}
	}
	return "", false
}

func structValue(v reflect.Value, name string) any {
	f := v.FieldByName(name)
	if !f.IsValid() || !f.CanInterface() {
		return nil
	}
	return f.Interface()
}

func structString(v reflect.Value, name string) string {
	s, _ := structValue(v, name).(string)
	return s
}

// jsonTypeName names a Go type as JSON would: "string", "integer",
// "object", "list of strings".
func jsonTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 string"
		}
		return "list"
	case reflect.Pointer:
		return jsonTypeName(t.Elem())
	}
	return t.String()
}

// resolveIndices finds the concrete path of a field path without list
// indices ("spec.containers.ports.containerPort" as the JSON decoder
// reports it): the first element whose JSON kind is got.
//
// At the end of the path, the values of a map and the elements of a list
// are tried before the field itself: the decoder names a map or list
// field when one of its values has the wrong type.
func resolveIndices(v any, segs []string, got, prefix string) (string, bool) {
	switch x := v.(type) {
	case map[string]any:
		if len(segs) > 0 {
			if child, ok := x[segs[0]]; ok {
				return resolveIndices(child, segs[1:], got, joinField(prefix, segs[0]))
			}
			return "", false
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if jsonKind(x[k]) == got {
				return joinField(prefix, k), true
			}
		}
	case []any:
		for i, it := range x {
			if p, ok := resolveIndices(it, segs, got, prefix+"["+strconv.Itoa(i)+"]"); ok {
				return p, true
			}
		}
	}
	if len(segs) == 0 && jsonKind(v) == got {
		return prefix, true
	}
	return "", false
}

// jsonKind names the JSON kind of a decoded value as encoding/json's
// UnmarshalTypeError does.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "bool"
	case int64, float64, json.Number:
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return ""
}

// isTypedList reports whether client-go knows gvk as a list type
// (ConfigMapList and the like).
func isTypedList(gvk schema.GroupVersionKind) bool {
	if !scheme.Scheme.Recognizes(gvk) {
		return false
	}
	obj, err := scheme.Scheme.New(gvk)
	return err == nil && meta.IsListType(obj)
}
