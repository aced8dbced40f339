package apiserver

import (
	"reflect"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// The status and spec helpers work on any kind: typed objects through their
// Spec and Status fields, unstructured ones through their map keys.

func topField(obj runtime.Object, name string) (reflect.Value, bool) {
	v := reflect.ValueOf(obj)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	f := v.Elem().FieldByName(name)
	return f, f.IsValid()
}

func clearStatus(obj runtime.Object) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		delete(u.Object, "status")
		return
	}
	if f, ok := topField(obj, "Status"); ok {
		f.Set(reflect.Zero(f.Type()))
	}
}

// copyTop sets dst's top-level field name (Spec, Status) to src's.
func copyTop(dst, src runtime.Object, name string) {
	key := map[string]string{"Spec": "spec", "Status": "status"}[name]
	if du, ok := dst.(*unstructured.Unstructured); ok {
		su := src.(*unstructured.Unstructured)
		if v, ok := su.Object[key]; ok {
			du.Object[key] = runtime.DeepCopyJSONValue(v)
		} else {
			delete(du.Object, key)
		}
		return
	}
	df, ok1 := topField(dst, name)
	sf, ok2 := topField(src, name)
	if ok1 && ok2 {
		df.Set(sf)
	}
}

// specChanged reports whether the objects differ in anything but metadata
// and status: what bumps metadata.generation.
func specChanged(a, b runtime.Object) bool {
	if au, ok := a.(*unstructured.Unstructured); ok {
		bu := b.(*unstructured.Unstructured)
		for k := range merged(au.Object, bu.Object) {
			if k == "metadata" || k == "status" || k == "kind" || k == "apiVersion" {
				continue
			}
			if !equality.Semantic.DeepEqual(au.Object[k], bu.Object[k]) {
				return true
			}
		}
		return false
	}
	av, bv := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := av.Type()
	for i := 0; i < t.NumField(); i++ {
		switch t.Field(i).Name {
		case "TypeMeta", "ObjectMeta", "Status":
			continue
		}
		if !equality.Semantic.DeepEqual(av.Field(i).Interface(), bv.Field(i).Interface()) {
			return true
		}
	}
	return false
}

func merged(a, b map[string]any) map[string]struct{} {
	m := map[string]struct{}{}
	for k := range a {
		m[k] = struct{}{}
	}
	for k := range b {
		m[k] = struct{}{}
	}
	return m
}

func formatRev(rev int64) string { return strconv.FormatInt(rev, 10) }
