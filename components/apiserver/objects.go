package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"

	"kiln.dev/kiln/components/apiserver/resources"
	"kiln.dev/kiln/components/store"
)

// resource is a served resource plus what the server derives from it once.
type resource struct {
	resources.Resource
	gr schema.GroupResource
	gk schema.GroupKind
	// typed is true when client-go's scheme knows the kind; other kinds
	// (kiln's Source, CRDs) are handled as unstructured JSON.
	typed bool
	// hasSpec and hasStatus say whether the kind has those fields, for
	// generation and status-subresource rules.
	hasSpec, hasStatus bool
	// statusSub says whether status is written only through /status.
	statusSub bool
	// prefix is the store prefix of all its objects (no namespace).
	prefix string
	// conv is set when the kind is served at several versions stored as
	// one (conversion.go); nil for every other kind.
	conv *conversion
}

func newResource(r resources.Resource) *resource {
	res := &resource{
		Resource:  r,
		gr:        schema.GroupResource{Group: r.Group, Resource: r.Name},
		gk:        schema.GroupKind{Group: r.Group, Kind: r.Kind},
		statusSub: r.HasSubresource("status"),
		prefix:    store.Prefix(r.Group, r.Name, ""),
	}
	if obj, err := clientgoscheme.Scheme.New(r.GroupVersionKind()); err == nil {
		res.typed = true
		t := reflect.TypeOf(obj).Elem()
		_, res.hasSpec = t.FieldByName("Spec")
		_, res.hasStatus = t.FieldByName("Status")
	} else {
		res.hasSpec, res.hasStatus = true, true
	}
	return res
}

// key is the store key of one object.
func (r *resource) key(namespace, name string) string {
	if !r.Namespaced {
		namespace = ""
	}
	return store.Key(r.Group, r.Name, namespace, name)
}

// listPrefix is the store prefix for a list in namespace ("" = all).
func (r *resource) listPrefix(namespace string) string {
	if !r.Namespaced {
		namespace = ""
	}
	return store.Prefix(r.Group, r.Name, namespace)
}

// newObject returns an empty object of the resource's kind.
func (r *resource) newObject() runtime.Object {
	if r.typed {
		obj, _ := clientgoscheme.Scheme.New(r.GroupVersionKind())
		return obj
	}
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetGroupVersionKind(r.GroupVersionKind())
	return u
}

// decodeStored parses an object as written by encodeStored and sets its
// resourceVersion. A kind with a conversion comes back at r's version,
// whatever version it was stored at.
func (r *resource) decodeStored(kv store.KV) (runtime.Object, error) {
	if r.conv != nil {
		return r.decodeConverted(kv)
	}
	obj := r.newObject()
	if err := unmarshalInto(kv.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	setKind(obj, r.GroupVersionKind())
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	m.SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
	return obj, nil
}

func unmarshalInto(data []byte, obj runtime.Object) error {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		m := map[string]any{}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &m); err != nil {
			return err
		}
		u.Object = m
		return nil
	}
	return sigsjson.UnmarshalCaseSensitivePreserveInts(data, obj)
}

func setKind(obj runtime.Object, gvk schema.GroupVersionKind) {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
}

// encodeStored writes the object in the form the read paths rely on: it
// opens with kind, apiVersion and metadata, and metadata carries no
// resourceVersion (the mod revision is the resourceVersion). For a kind
// with a conversion, r and obj are at the storage version: create, update
// and delete convert before they get here.
func (r *resource) encodeStored(obj runtime.Object) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	rv := m.GetResourceVersion()
	m.SetResourceVersion("")
	m.SetManagedFields(nil)
	defer m.SetResourceVersion(rv)
	setKind(obj, r.GroupVersionKind())
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return encodeUnstructured(u.Object)
	}
	return json.Marshal(obj)
}

// encodeUnstructured writes kind, apiVersion and metadata first, like the
// typed encoder, so withResourceVersion can find metadata.
func encodeUnstructured(m map[string]any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	write := func(k string, v any) error {
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(vb)
		return nil
	}
	md, _ := m["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	for _, k := range []string{"kind", "apiVersion"} {
		if err := write(k, m[k]); err != nil {
			return nil, err
		}
	}
	if err := write("metadata", md); err != nil {
		return nil, err
	}
	rest := make(map[string]any, len(m))
	for k, v := range m {
		if k != "kind" && k != "apiVersion" && k != "metadata" {
			rest[k] = v
		}
	}
	if len(rest) > 0 {
		rb, err := json.Marshal(rest)
		if err != nil {
			return nil, err
		}
		b.WriteByte(',')
		b.Write(rb[1 : len(rb)-1])
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var metadataOpen = []byte(`"metadata":{`)

// withResourceVersion returns the stored JSON with metadata.resourceVersion
// set, without decoding it: stored objects open with kind and apiVersion
// (plain strings, so no nested object precedes it) and then metadata.
func withResourceVersion(data []byte, rev int64) []byte {
	i := bytes.Index(data, metadataOpen)
	if i < 0 {
		return data
	}
	i += len(metadataOpen)
	out := make([]byte, 0, len(data)+40)
	out = append(out, data[:i]...)
	out = append(out, `"resourceVersion":"`...)
	out = strconv.AppendInt(out, rev, 10)
	out = append(out, '"')
	if i < len(data) && data[i] != '}' {
		out = append(out, ',')
	}
	return append(out, data[i:]...)
}

// objectMeta is the part of an object selectors look at, decoded cheaply.
type objectMeta struct {
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase string `json:"phase"`
	} `json:"status"`
	InvolvedObject map[string]any `json:"involvedObject"`
	Type           string         `json:"type"`
	Reason         string         `json:"reason"`
}

func accessor(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		// Every served kind has ObjectMeta; a failure here is a bug in
		// the catalog, not bad input.
		panic(fmt.Sprintf("apiserver: object %T without metadata", obj))
	}
	return m
}
