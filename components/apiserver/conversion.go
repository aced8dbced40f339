package apiserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"kiln.dev/kiln/components/store"
)

// conversion serves one kind at several versions that share one store key,
// as kube-apiserver does: every write stores the storage version and every
// read converts to the version of the request. HPAs are the one such kind
// (autoscaling/v2, stored, and v1); every other resource has no conversion
// and serves its stored JSON as is.
type conversion struct {
	// storage is the resource of the version objects are stored at.
	storage *resource
	// open is how the stored JSON of an object at the storage version
	// opens (encodeStored writes kind and apiVersion first); anything
	// else was stored at another version, by an older kiln.
	open []byte
	// up converts an object of a version to the storage version; at the
	// storage version itself it drops what may not be stored. down
	// converts an object of the storage version to another version.
	up, down map[string]func(runtime.Object) (runtime.Object, error)
}

func newConversion(storage *resource, up, down map[string]func(runtime.Object) (runtime.Object, error)) *conversion {
	open := fmt.Sprintf(`{"kind":%q,"apiVersion":%q,`, storage.Kind, storage.GroupVersion().String())
	return &conversion{storage: storage, open: []byte(open), up: up, down: down}
}

// addConversions gives the resources of kinds served at more than one
// version their conversion.
func addConversions(byGVR map[gvrKey]*resource) {
	v2 := byGVR[gvrKey{"autoscaling", "v2", "horizontalpodautoscalers"}]
	v1 := byGVR[gvrKey{"autoscaling", "v1", "horizontalpodautoscalers"}]
	if v1 == nil || v2 == nil {
		return
	}
	c := newConversion(v2,
		map[string]func(runtime.Object) (runtime.Object, error){"v1": hpaUp, "v2": hpaClean},
		map[string]func(runtime.Object) (runtime.Object, error){"v1": hpaDown})
	v1.conv, v2.conv = c, c
}

// toStorage converts an object of r's version to the storage version.
func (r *resource) toStorage(obj runtime.Object) (runtime.Object, error) {
	if r.conv == nil {
		return obj, nil
	}
	return r.conv.up[r.Version](obj)
}

// fromStorage converts an object of the storage version to r's version.
func (r *resource) fromStorage(obj runtime.Object) (runtime.Object, error) {
	if r.conv == nil || r == r.conv.storage {
		return obj, nil
	}
	out, err := r.conv.down[r.Version](obj)
	if err != nil {
		return nil, err
	}
	setKind(out, r.GroupVersionKind())
	return out, nil
}

// servedJSON is kv's object as r serves it, with its resourceVersion. The
// stored JSON is served without decoding unless r converts it.
func (r *resource) servedJSON(kv store.KV) ([]byte, error) {
	if r.conv == nil {
		return withResourceVersion(kv.Value, kv.ModRevision), nil
	}
	return r.convertedJSON(kv)
}

func (r *resource) convertedJSON(kv store.KV) ([]byte, error) {
	if r == r.conv.storage && bytes.HasPrefix(kv.Value, r.conv.open) {
		return withResourceVersion(kv.Value, kv.ModRevision), nil
	}
	obj, err := r.decodeStored(kv)
	if err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// decodeConverted is decodeStored for a resource with a conversion: it
// decodes the object at the version it was stored at and converts it to
// the storage version, then to r's.
func (r *resource) decodeConverted(kv store.KV) (runtime.Object, error) {
	c := r.conv
	gvk := c.storage.GroupVersionKind()
	if !bytes.HasPrefix(kv.Value, c.open) {
		var tm metav1.TypeMeta
		if err := json.Unmarshal(kv.Value, &tm); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		gv, err := schema.ParseGroupVersion(tm.APIVersion)
		if err != nil || gv.Group != gvk.Group || c.up[gv.Version] == nil {
			return nil, fmt.Errorf("decode %s: stored at unknown apiVersion %q", kv.Key, tm.APIVersion)
		}
		gvk.Version = gv.Version
	}
	obj, err := clientgoscheme.Scheme.New(gvk)
	if err != nil {
		return nil, err
	}
	if err := unmarshalInto(kv.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	if gvk.Version != c.storage.Version {
		if obj, err = c.up[gvk.Version](obj); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	if obj, err = r.fromStorage(obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	setKind(obj, r.GroupVersionKind())
	accessor(obj).SetResourceVersion(strconv.FormatInt(kv.ModRevision, 10))
	return obj, nil
}
