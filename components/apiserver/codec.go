package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	mimeJSON     = "application/json"
	mimeYAML     = "application/yaml"
	mimeProtobuf = "application/vnd.kubernetes.protobuf"
)

// codecs decodes protobuf bodies (kubectl create and client-go's typed
// writes send them).
var codecs = serializer.NewCodecFactory(clientgoscheme.Scheme)

// protobufSerializer encodes the object a write returns for clients that
// prefer protobuf, as client-go's typed clients do by default; every other
// response is JSON.
var protobufSerializer = protobuf.NewSerializer(clientgoscheme.Scheme, clientgoscheme.Scheme)

// readBody reads at most maxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := readAll(http.MaxBytesReader(w, r.Body, maxBodyBytes), r.ContentLength)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", maxBodyBytes))
		}
		return nil, badRequest("read request body: %v", err)
	}
	return body, nil
}

// readAll is io.ReadAll into a buffer sized from the declared length, so
// that a body is read without growing and copying the buffer; one byte more
// than declared lets it see EOF without growing.
func readAll(rd io.Reader, size int64) ([]byte, error) {
	if size <= 0 || size > maxBodyBytes {
		return io.ReadAll(rd)
	}
	b := make([]byte, 0, size+1)
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func contentType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		// kubectl scale --current-replicas sends none.
		return mimeJSON
	}
	if !strings.Contains(ct, ";") {
		// What clients send (no charset): the parse below costs more
		// than the rest of reading a small body's type.
		return strings.ToLower(strings.TrimSpace(ct))
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ct
	}
	return mt
}

// bodyToJSON returns a JSON or YAML body as JSON; duplicate keys in YAML
// are an error as in JSON.
func bodyToJSON(ct string, body []byte) ([]byte, error) {
	switch ct {
	case mimeJSON, "application/merge-patch+json", "application/strategic-merge-patch+json",
		"application/json-patch+json", "application/apply-patch+yaml", mimeYAML, "application/apply-patch+json":
	default:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
			fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s", mimeJSON, mimeYAML, mimeProtobuf), 0, false)
	}
	trimmed := strings.TrimSpace(string(body))
	if strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[") {
		return body, nil
	}
	j, err := yaml.YAMLToJSONStrict(body)
	if err != nil {
		return nil, badRequest("error decoding YAML body: %v", err)
	}
	return j, nil
}

// decodeOptions says how strictly to read a body.
type decodeOptions struct {
	// fieldValidation is Strict, Warn or Ignore (the query parameter).
	fieldValidation string
}

// decodeBody decodes a create or update body into into (a new object of
// gvk's kind). It returns warnings for unknown or duplicate fields under
// fieldValidation=Warn and an error under Strict, as kube-apiserver does.
func decodeBody(r *http.Request, body []byte, into runtime.Object, gvk schema.GroupVersionKind, opts decodeOptions) ([]string, error) {
	ct := contentType(r)
	handled := fmt.Sprintf("%s in version %q cannot be handled as a %s", gvk.Kind, gvk.Version, gvk.Kind)
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, badRequest("%s: the request body is empty", handled)
	}
	if ct == mimeProtobuf {
		def := gvk
		obj, got, err := codecs.UniversalDeserializer().Decode(body, &def, into)
		if err != nil {
			return nil, badRequest("%s: %v", handled, err)
		}
		if got.GroupKind() != gvk.GroupKind() || obj != into {
			return nil, badRequest("%s: the body is a %s", handled, got.Kind)
		}
		// The deserializer also takes JSON and YAML here, and leaves the
		// kind empty when such a body names none.
		setKind(into, gvk)
		return nil, nil
	}
	j, err := bodyToJSON(ct, body)
	if err != nil {
		return nil, err
	}
	return decodeJSON(j, into, gvk, opts)
}

// decodeJSON decodes a JSON object into into, checking that its kind and
// apiVersion (if given) are gvk's and applying fieldValidation.
func decodeJSON(j []byte, into runtime.Object, gvk schema.GroupVersionKind, opts decodeOptions) ([]string, error) {
	handled := fmt.Sprintf("%s in version %q cannot be handled as a %s", gvk.Kind, gvk.Version, gvk.Kind)
	// An empty YAML document is null, and null would decode as an empty
	// object: anything but an object is refused here, as kube does.
	if t := bytes.TrimSpace(j); len(t) == 0 || t[0] != '{' {
		return nil, badRequest("%s: the body must be an object, not %s", handled, jsonKind(t))
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return nil, badRequest("%s: %v", handled, jsonErr(err))
	}
	if head.Kind != "" && head.Kind != gvk.Kind {
		return nil, badRequest("%s: the kind in the data (%s) does not match the expected kind (%s)", handled, head.Kind, gvk.Kind)
	}
	if head.APIVersion != "" && head.APIVersion != gvk.GroupVersion().String() {
		return nil, badRequest("the API version in the data (%s) does not match the expected API version (%s)", head.APIVersion, gvk.GroupVersion().String())
	}
	var target any = into
	u, isU := into.(*unstructured.Unstructured)
	var m map[string]any
	if isU {
		target = &m
	}
	strictOpts := []sigsjson.StrictOption{sigsjson.DisallowDuplicateFields}
	if !isU {
		strictOpts = append(strictOpts, sigsjson.DisallowUnknownFields)
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, target, strictOpts...)
	if err != nil {
		return nil, badRequest("%s: %v", handled, jsonErr(err))
	}
	if isU {
		if m == nil {
			return nil, badRequest("%s: the body is not an object", handled)
		}
		// Without a Go type nothing else checks metadata's shape; a label
		// that is a number would be stored and break every typed reader.
		var meta struct {
			Metadata *metav1.ObjectMeta `json:"metadata"`
		}
		if err := json.Unmarshal(j, &meta); err != nil {
			return nil, badRequest("%s: metadata: %v", handled, err)
		}
		u.Object = m
	}
	setKind(into, gvk)
	if len(strictErrs) == 0 || opts.fieldValidation == "Ignore" {
		return nil, nil
	}
	if opts.fieldValidation == "Strict" {
		return nil, badRequest("%s: %v", handled, runtime.NewStrictDecodingError(strictErrs))
	}
	warnings := make([]string, len(strictErrs))
	for i, e := range strictErrs {
		warnings[i] = e.Error()
	}
	return warnings, nil
}

// jsonKind names the JSON value that t (trimmed) opens, for errors.
func jsonKind(t []byte) string {
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number or invalid JSON"
}

// jsonErr makes a JSON syntax error say where it is.
func jsonErr(err error) error {
	if ok, off := sigsjson.SyntaxErrorOffset(err); ok {
		return fmt.Errorf("json: %w (at byte %d)", err, off)
	}
	return err
}

func fieldValidation(r *http.Request) (decodeOptions, error) {
	fv := r.URL.Query().Get("fieldValidation")
	switch fv {
	case "":
		fv = "Warn"
	case "Strict", "Warn", "Ignore":
	default:
		return decodeOptions{}, badRequest("fieldValidation must be one of Strict, Warn or Ignore, not %q", fv)
	}
	return decodeOptions{fieldValidation: fv}, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"encode response","reason":"InternalError","code":500}`)
	}
	writeRaw(w, code, mimeJSON, b)
}

// storedObject is an object's JSON as written to the store (without
// resourceVersion) and the revision it was written at.
type storedObject struct {
	data []byte
	rev  int64
}

// writeObject answers a write with the object written: in protobuf when the
// client prefers it and the kind has a protobuf form, else in JSON. stored,
// when set, is the object as just written, whose JSON is then sent with
// the resourceVersion spliced in rather than encoded again.
//
// Reads answer JSON whatever the client prefers: they serve the stored
// JSON without decoding it, which costs less than a protobuf encoding, and
// JSON is in every client's Accept.
func writeObject(w http.ResponseWriter, r *http.Request, code int, obj runtime.Object, stored *storedObject) {
	if wantsProtobuf(r) {
		var out bytesWriter
		if err := protobufSerializer.EncodeWithAllocator(obj, &out, &runtime.SimpleAllocator{}); err == nil {
			writeRaw(w, code, mimeProtobuf, out.b)
			return
		}
		// Kinds without a protobuf form (unstructured ones) answer JSON,
		// which the client accepts too.
	}
	if stored != nil {
		writeRaw(w, code, mimeJSON, withResourceVersion(stored.data, stored.rev))
		return
	}
	writeJSON(w, code, obj)
}

// bytesWriter keeps the one slice the protobuf serializer writes; the
// serializer allocates it for this call, so it is not copied.
type bytesWriter struct{ b []byte }

func (bw *bytesWriter) Write(p []byte) (int, error) {
	if bw.b == nil {
		bw.b = p
	} else {
		bw.b = append(bw.b, p...)
	}
	return len(p), nil
}

// wantsProtobuf reports whether the Accept header ranks protobuf above
// JSON, as client-go's "application/vnd.kubernetes.protobuf,
// application/json" does. Clauses asking for another shape (as=Table, a
// watch stream) do not count.
func wantsProtobuf(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	if !strings.Contains(accept, mimeProtobuf) {
		return false
	}
	if !strings.Contains(accept, ";") {
		// No parameters, so no q values: the first known type wins. This
		// is client-go's header; parsing each clause cost more than the
		// rest of the negotiation.
		for clause := range strings.SplitSeq(accept, ",") {
			switch mt := strings.ToLower(strings.TrimSpace(clause)); mt {
			case mimeProtobuf, mimeJSON, "*/*", "application/*":
				return mt == mimeProtobuf
			}
		}
		return false
	}
	best, bestQ := "", 0.0
	for clause := range strings.SplitSeq(accept, ",") {
		mt, params, err := mime.ParseMediaType(clause)
		if err != nil || params["as"] != "" || params["stream"] != "" {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		switch mt {
		case mimeProtobuf, mimeJSON, "*/*", "application/*":
			if q > bestQ {
				best, bestQ = mt, q
			}
		}
	}
	return best == mimeProtobuf
}

func writeRaw(w http.ResponseWriter, code int, ct string, b []byte) {
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, m := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %q", m))
	}
}

// wantsTable says whether the client asked for meta.k8s.io Table output.
func wantsTable(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		if strings.Contains(part, "as=Table") && strings.Contains(part, "g=meta.k8s.io") {
			return true
		}
	}
	return false
}

// readObject reads a create or update body: the dryRun and fieldValidation
// parameters, then the body decoded into a new object of res's kind.
func readObject(w http.ResponseWriter, r *http.Request, res *resource) (obj runtime.Object, warnings []string, dry bool, err error) {
	obj = res.newObject()
	warnings, dry, err = readInto(w, r, obj, res.GroupVersionKind())
	return obj, warnings, dry, err
}

// readInto is readObject for a body of kind gvk decoded into obj.
func readInto(w http.ResponseWriter, r *http.Request, obj runtime.Object, gvk schema.GroupVersionKind) (warnings []string, dry bool, err error) {
	if dry, err = dryRun(r); err != nil {
		return nil, false, err
	}
	opts, err := fieldValidation(r)
	if err != nil {
		return nil, false, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, false, err
	}
	warnings, err = decodeBody(r, body, obj, gvk, opts)
	return warnings, dry, err
}
