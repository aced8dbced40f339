package printers

import (
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes/scheme"
)

// Columns returns the column definitions for a resource, named by its API
// group ("" for core) and plural resource name. Unknown resources get Name
// and Age. The slice is new on every call, so callers may modify it.
func Columns(group, resource string) []metav1.TableColumnDefinition {
	if p, ok := lookup(group, resource); ok {
		return p.columns()
	}
	return defaultColumns()
}

// Row returns the cells of obj's row, in Columns(group, resource) order and
// always len(Columns(group, resource)) long, wide cells included. obj is a
// typed k8s.io/api object (a pointer) or an *unstructured.Unstructured. now
// is the time ages are measured against.
//
// An object that is not of the resource's type (and cannot be converted to
// it) still gets a row of the right length: its name and age where those
// columns are, and "<unknown>" in the others.
func Row(group, resource string, obj runtime.Object, now time.Time) []interface{} {
	obj = nilIfNil(obj)
	p, ok := lookup(group, resource)
	if !ok {
		return defaultRow(obj, now)
	}
	if cells, ok := p.row(obj, now); ok {
		return cells
	}
	return fallbackRow(p.columns(), obj, now)
}

// Table builds the Table for objs: the column definitions and one row per
// object. It serves lists, gets (one object) and each watch event (one object
// per Table).
//
// includeObject is the request's includeObject parameter: "None" leaves
// rows[].object empty, "Object" embeds the full object, and "Metadata" or ""
// (the default) embeds a meta.k8s.io/v1 PartialObjectMetadata with the
// object's ObjectMeta. The caller rejects other values (kube-apiserver answers
// 400); Table treats them as "Metadata".
//
// The Table's ListMeta is left empty for the caller to fill.
func Table(group, resource string, objs []runtime.Object, includeObject string, now time.Time) *metav1.Table {
	tbl := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{Kind: "Table", APIVersion: metav1.SchemeGroupVersion.String()},
		ColumnDefinitions: Columns(group, resource),
		Rows:              make([]metav1.TableRow, 0, len(objs)),
	}
	for _, obj := range objs {
		obj = nilIfNil(obj)
		row := metav1.TableRow{
			Cells:      Row(group, resource, obj, now),
			Conditions: rowConditions(group, resource, obj),
		}
		switch metav1.IncludeObjectPolicy(includeObject) {
		case metav1.IncludeNone:
		case metav1.IncludeObject:
			row.Object = runtime.RawExtension{Object: withTypeMeta(obj)}
		default:
			if m, err := meta.Accessor(obj); err == nil {
				partial := meta.AsPartialObjectMetadata(m)
				partial.SetGroupVersionKind(metav1.SchemeGroupVersion.WithKind("PartialObjectMetadata"))
				row.Object = runtime.RawExtension{Object: partial}
			}
		}
		tbl.Rows = append(tbl.Rows, row)
	}
	return tbl
}

// printer prints one resource.
type printer struct {
	columns func() []metav1.TableColumnDefinition
	// row returns false when obj is not of the printer's type.
	row func(obj runtime.Object, now time.Time) ([]interface{}, bool)
}

// lookup returns the printer of a resource. It is a switch, not a map, so the
// package holds no state.
func lookup(group, resource string) (printer, bool) {
	switch group {
	case "":
		switch resource {
		case "pods":
			return typed(podColumns, printPod), true
		case "nodes":
			return typed(nodeColumns, printNode), true
		case "namespaces":
			return typed(namespaceColumns, printNamespace), true
		case "services":
			return typed(serviceColumns, printService), true
		case "endpoints":
			return typed(endpointsColumns, printEndpoints), true
		case "events":
			return typed(eventColumns, printEvent), true
		case "configmaps":
			return typed(configMapColumns, printConfigMap), true
		case "secrets":
			return typed(secretColumns, printSecret), true
		case "serviceaccounts":
			return typed(serviceAccountColumns, printServiceAccount), true
		case "persistentvolumeclaims":
			return typed(pvcColumns, printPVC), true
		case "persistentvolumes":
			return typed(pvColumns, printPV), true
		}
	case "apps":
		switch resource {
		case "deployments":
			return typed(deploymentColumns, printDeployment), true
		case "replicasets":
			return typed(replicaSetColumns, printReplicaSet), true
		case "daemonsets":
			return typed(daemonSetColumns, printDaemonSet), true
		case "statefulsets":
			return typed(statefulSetColumns, printStatefulSet), true
		}
	case "batch":
		switch resource {
		case "jobs":
			return typed(jobColumns, printJob), true
		case "cronjobs":
			return typed(cronJobColumns, printCronJob), true
		}
	case "autoscaling":
		if resource == "horizontalpodautoscalers" {
			return hpaPrinter(), true
		}
	case "networking.k8s.io":
		if resource == "ingresses" {
			return typed(ingressColumns, printIngress), true
		}
	case "discovery.k8s.io":
		if resource == "endpointslices" {
			return typed(endpointSliceColumns, printEndpointSlice), true
		}
	case "storage.k8s.io":
		if resource == "storageclasses" {
			return typed(storageClassColumns, printStorageClass), true
		}
	case "coordination.k8s.io":
		if resource == "leases" {
			return typed(leaseColumns, printLease), true
		}
	case "events.k8s.io":
		if resource == "events" {
			return typed(eventColumns, printEventsV1Event), true
		}
	case sourceGroup:
		if resource == "sources" {
			return printer{columns: sourceColumns, row: printSource}, true
		}
	}
	return printer{}, false
}

// typed makes a printer from a function of the resource's typed struct. An
// *unstructured.Unstructured is converted to that struct first.
func typed[T any, PT interface {
	*T
	runtime.Object
}](columns func() []metav1.TableColumnDefinition, print func(PT, time.Time) []interface{}) printer {
	return printer{
		columns: columns,
		row: func(obj runtime.Object, now time.Time) ([]interface{}, bool) {
			switch o := obj.(type) {
			case PT:
				return print(o, now), true
			case *unstructured.Unstructured:
				t := PT(new(T))
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.UnstructuredContent(), t); err != nil {
					return nil, false
				}
				return print(t, now), true
			}
			return nil, false
		},
	}
}

// objectMetaDoc returns the doc of an ObjectMeta field; kube-apiserver uses
// them as the Name and Age column descriptions.
func objectMetaDoc(field string) string { return metav1.ObjectMeta{}.SwaggerDoc()[field] }

func nameColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc("name")}
}

func ageColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: objectMetaDoc("creationTimestamp")}
}

// crdAgeColumn is the Age column kube-apiserver adds to a
// CustomResourceDefinition that declares no printer columns.
func crdAgeColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{
		Name:        "Age",
		Type:        "date",
		Description: "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp",
	}
}

func defaultColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{nameColumn(), crdAgeColumn()}
}

func defaultRow(obj runtime.Object, now time.Time) []interface{} {
	name, created := nameAndCreation(obj)
	return []interface{}{name, age(created, now)}
}

// fallbackRow is the row of an object the resource's printer cannot read.
func fallbackRow(cols []metav1.TableColumnDefinition, obj runtime.Object, now time.Time) []interface{} {
	name, created := nameAndCreation(obj)
	cells := make([]interface{}, len(cols))
	for i, c := range cols {
		switch {
		case c.Format == "name":
			cells[i] = name
		case c.Name == "Age":
			cells[i] = age(created, now)
		default:
			cells[i] = "<unknown>"
		}
	}
	return cells
}

// nilIfNil turns a typed nil pointer into a nil interface, so that the
// printers, which check obj == nil, never call methods on it.
func nilIfNil(obj runtime.Object) runtime.Object {
	if obj == nil {
		return nil
	}
	if v := reflect.ValueOf(obj); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil
	}
	return obj
}

func nameAndCreation(obj runtime.Object) (string, metav1.Time) {
	if obj == nil {
		return "", metav1.Time{}
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return "", metav1.Time{}
	}
	return m.GetName(), m.GetCreationTimestamp()
}

// age is kube's translateTimestampSince, measured against now.
func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// microAge is kube's translateMicroTimestampSince, measured against now.
func microAge(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

// withTypeMeta returns obj with apiVersion and kind set, so that clients can
// decode it from rows[].object (kubectl --sort-by decodes it as unstructured,
// which needs a kind). Typed objects read from storage may lack them; obj is
// copied, not changed.
func withTypeMeta(obj runtime.Object) runtime.Object {
	if obj == nil || !obj.GetObjectKind().GroupVersionKind().Empty() {
		return obj
	}
	gvks, _, err := scheme.Scheme.ObjectKinds(obj)
	if err != nil || len(gvks) == 0 {
		return obj
	}
	c := obj.DeepCopyObject()
	c.GetObjectKind().SetGroupVersionKind(gvks[0])
	return c
}
