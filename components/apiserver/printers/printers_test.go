package printers

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// covered lists every resource with a printer, with an empty object of its type.
var covered = []struct {
	group, resource string
	empty           runtime.Object
}{
	{"", "pods", &corev1.Pod{}},
	{"", "nodes", &corev1.Node{}},
	{"", "namespaces", &corev1.Namespace{}},
	{"", "services", &corev1.Service{}},
	{"", "endpoints", &corev1.Endpoints{}},
	{"", "events", &corev1.Event{}},
	{"", "configmaps", &corev1.ConfigMap{}},
	{"", "secrets", &corev1.Secret{}},
	{"", "serviceaccounts", &corev1.ServiceAccount{}},
	{"", "persistentvolumeclaims", &corev1.PersistentVolumeClaim{}},
	{"", "persistentvolumes", &corev1.PersistentVolume{}},
	{"storage.k8s.io", "storageclasses", &storagev1.StorageClass{}},
	{"apps", "deployments", &appsv1.Deployment{}},
	{"apps", "replicasets", &appsv1.ReplicaSet{}},
	{"apps", "daemonsets", &appsv1.DaemonSet{}},
	{"apps", "statefulsets", &appsv1.StatefulSet{}},
	{"batch", "jobs", &batchv1.Job{}},
	{"batch", "cronjobs", &batchv1.CronJob{}},
	{"networking.k8s.io", "ingresses", &networkingv1.Ingress{}},
	{"discovery.k8s.io", "endpointslices", &discoveryv1.EndpointSlice{}},
	{"coordination.k8s.io", "leases", &coordinationv1.Lease{}},
	{"events.k8s.io", "events", &eventsv1.Event{}},
	{"gitops.kiln.dev", "sources", &unstructured.Unstructured{Object: map[string]interface{}{}}},
}

func TestColumns(t *testing.T) {
	// name, then "*" for priority 1 (wide) columns.
	want := map[string]string{
		"/pods":                           "Name Ready Status Restarts Age IP* Node* Nominated Node* Readiness Gates*",
		"/nodes":                          "Name Status Roles Age Version Internal-IP* External-IP* OS-Image* Kernel-Version* Container-Runtime*",
		"/namespaces":                     "Name Status Age",
		"/services":                       "Name Type Cluster-IP External-IP Port(s) Age Selector*",
		"/endpoints":                      "Name Endpoints Age",
		"/events":                         "Last Seen Type Reason Object Subobject* Source* Message First Seen* Count* Name*",
		"/configmaps":                     "Name Data Age",
		"/secrets":                        "Name Type Data Age",
		"/serviceaccounts":                "Name Secrets Age",
		"/persistentvolumeclaims":         "Name Status Volume Capacity Access Modes StorageClass VolumeAttributesClass Age VolumeMode*",
		"/persistentvolumes":              "Name Capacity Access Modes Reclaim Policy Status Claim StorageClass VolumeAttributesClass Reason Age VolumeMode*",
		"storage.k8s.io/storageclasses":   "Name Provisioner ReclaimPolicy VolumeBindingMode AllowVolumeExpansion Age",
		"apps/deployments":                "Name Ready Up-to-date Available Age Containers* Images* Selector*",
		"apps/replicasets":                "Name Desired Current Ready Age Containers* Images* Selector*",
		"apps/daemonsets":                 "Name Desired Current Ready Up-to-date Available Node Selector Age Containers* Images* Selector*",
		"apps/statefulsets":               "Name Ready Age Containers* Images*",
		"batch/jobs":                      "Name Status Completions Duration Age Containers* Images* Selector*",
		"batch/cronjobs":                  "Name Schedule Timezone Suspend Active Last Schedule Age Containers* Images* Selector*",
		"networking.k8s.io/ingresses":     "Name Class Hosts Address Ports Age",
		"discovery.k8s.io/endpointslices": "Name AddressType Ports Endpoints Age",
		"coordination.k8s.io/leases":      "Name Holder Age",
		"events.k8s.io/events":            "Last Seen Type Reason Object Subobject* Source* Message First Seen* Count* Name*",
		"gitops.kiln.dev/sources":         "Name Ready Revision Age URL* Message*",
		"example.com/widgets":             "Name Age",
		"/podtemplates":                   "Name Age",
	}
	for gr, names := range want {
		t.Run(gr, func(t *testing.T) {
			group, resource, _ := strings.Cut(gr, "/")
			cols := Columns(group, resource)
			var got []string
			for _, c := range cols {
				n := c.Name
				if c.Priority == 1 {
					n += "*"
				}
				got = append(got, n)
				if c.Description == "" {
					t.Errorf("column %q has no description", c.Name)
				}
				if c.Type == "" {
					t.Errorf("column %q has no type", c.Name)
				}
				if (c.Name == "Name") != (c.Format == "name") {
					t.Errorf("column %q has format %q", c.Name, c.Format)
				}
			}
			if g := strings.Join(got, " "); g != names {
				t.Errorf("columns = %q, want %q", g, names)
			}
		})
	}
}

func TestColumns_kubeDefinitions(t *testing.T) {
	// Spot checks against kube-apiserver's definitions, descriptions included.
	for _, tc := range []struct {
		group, resource string
		index           int
		want            metav1.TableColumnDefinition
	}{
		{"", "pods", 0, metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: metav1.ObjectMeta{}.SwaggerDoc()["name"]}},
		{"", "pods", 3, metav1.TableColumnDefinition{Name: "Restarts", Type: "string", Description: "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."}},
		{"", "pods", 5, metav1.TableColumnDefinition{Name: "IP", Type: "string", Priority: 1, Description: corev1.PodStatus{}.SwaggerDoc()["podIP"]}},
		{"", "nodes", 4, metav1.TableColumnDefinition{Name: "Version", Type: "string", Description: corev1.NodeSystemInfo{}.SwaggerDoc()["kubeletVersion"]}},
		{"apps", "replicasets", 1, metav1.TableColumnDefinition{Name: "Desired", Type: "integer", Description: "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset"}},
		{"", "services", 5, metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: metav1.ObjectMeta{}.SwaggerDoc()["creationTimestamp"]}},
		{"example.com", "widgets", 1, metav1.TableColumnDefinition{Name: "Age", Type: "date", Description: "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp"}},
	} {
		t.Run(tc.group+"/"+tc.resource+"/"+tc.want.Name, func(t *testing.T) {
			if got := Columns(tc.group, tc.resource)[tc.index]; got != tc.want {
				t.Errorf("column %d =\n  %#v\nwant\n  %#v", tc.index, got, tc.want)
			}
		})
	}
}

func TestColumns_fresh(t *testing.T) {
	a := Columns("", "pods")
	a[0].Name = "changed"
	if b := Columns("", "pods"); b[0].Name != "Name" {
		t.Fatalf("changing a returned slice changed the next: %q", b[0].Name)
	}
}

func TestRow_lengthMatchesColumns(t *testing.T) {
	for _, c := range covered {
		t.Run(c.group+"/"+c.resource, func(t *testing.T) {
			want := len(Columns(c.group, c.resource))
			objs := map[string]runtime.Object{
				"empty":              c.empty,
				"empty unstructured": &unstructured.Unstructured{Object: map[string]interface{}{}},
				"wrong type":         &corev1.Binding{ObjectMeta: objMeta("x")},
				"nil":                nil,
				"typed nil":          reflect.Zero(reflect.TypeOf(c.empty)).Interface().(runtime.Object),
			}
			for name, obj := range objs {
				cells := Row(c.group, c.resource, obj, now)
				if len(cells) != want {
					t.Errorf("%s: %d cells, want %d", name, len(cells), want)
				}
				if _, err := json.Marshal(cells); err != nil {
					t.Errorf("%s: cells do not encode: %v", name, err)
				}
				for i, cell := range cells {
					switch cell.(type) {
					case string, int64, bool:
					default:
						t.Errorf("%s: cell %d is %T", name, i, cell)
					}
				}
			}
		})
	}
}

func TestRow_unknownResource(t *testing.T) {
	widget := &unstructured.Unstructured{}
	widget.SetName("w-1")
	widget.SetCreationTimestamp(ago(3 * time.Hour))
	for _, tc := range []struct {
		name            string
		group, resource string
		obj             runtime.Object
		want            []interface{}
	}{
		{"custom resource", "example.com", "widgets", widget, []interface{}{"w-1", "3h"}},
		{"built-in without a printer", "", "podtemplates", &corev1.PodTemplate{ObjectMeta: objMeta("pt-1")}, []interface{}{"pt-1", "5m"}},
		{"no creation time", "example.com", "widgets", &unstructured.Unstructured{Object: map[string]interface{}{"metadata": map[string]interface{}{"name": "w-2"}}}, []interface{}{"w-2", "<unknown>"}},
		{"not an object", "example.com", "widgets", &metav1.Status{}, []interface{}{"", "<unknown>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Row(tc.group, tc.resource, tc.obj, now); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Row = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestRow_wrongType(t *testing.T) {
	got := Row("", "pods", &corev1.Service{ObjectMeta: objMeta("web")}, now)
	want := []interface{}{"web", "<unknown>", "<unknown>", "<unknown>", "5m", "<unknown>", "<unknown>", "<unknown>", "<unknown>"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Row = %#v, want %#v", got, want)
	}
}

// tablePods are the pods of the Table tests: one running, one succeeded.
func tablePods() []runtime.Object {
	running := pod(corev1.PodRunning, nil, []corev1.ContainerStatus{lastTerminated(running(true, 2), 3*time.Minute)})
	running.Name = "web-1"
	running.UID = types.UID("4b1f3c2e-0000-4000-8000-000000000001")
	running.ResourceVersion = "107"
	running.Labels = map[string]string{"app": "web"}
	done := pod(corev1.PodSucceeded, nil, []corev1.ContainerStatus{terminated("Completed", 0, 0)})
	done.Name = "migrate-x7k2p"
	done.UID = types.UID("4b1f3c2e-0000-4000-8000-000000000002")
	done.ResourceVersion = "108"
	return []runtime.Object{running, done}
}

func TestTable_json(t *testing.T) {
	tbl := Table("", "pods", tablePods(), "", now)
	tbl.ResourceVersion = "108" // the caller's part
	got, err := json.MarshalIndent(tbl, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	got = append(got, '\n')

	golden := filepath.Join("testdata", "table", "pods.json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Table JSON differs from %s (run with -update to accept):\n%s", golden, got)
	}

	// The shape kubectl reads, per KUBE-API-CONTRACT.md section 7.
	var shape struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Metadata   struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		ColumnDefinitions []map[string]interface{} `json:"columnDefinitions"`
		Rows              []struct {
			Cells  []interface{} `json:"cells"`
			Object struct {
				Kind       string `json:"kind"`
				APIVersion string `json:"apiVersion"`
				Metadata   struct {
					Name      string            `json:"name"`
					Namespace string            `json:"namespace"`
					Labels    map[string]string `json:"labels"`
				} `json:"metadata"`
			} `json:"object"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(got, &shape); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	if shape.Kind != "Table" || shape.APIVersion != "meta.k8s.io/v1" || shape.Metadata.ResourceVersion != "108" {
		t.Errorf("kind %q apiVersion %q resourceVersion %q", shape.Kind, shape.APIVersion, shape.Metadata.ResourceVersion)
	}
	for _, key := range []string{"name", "type", "format", "description", "priority"} {
		if _, ok := shape.ColumnDefinitions[0][key]; !ok {
			t.Errorf("columnDefinitions[0] has no %q", key)
		}
	}
	if len(shape.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(shape.Rows))
	}
	wantCells := []interface{}{"web-1", "1/1", "Running", "2 (3m ago)", "5m", "10.42.0.5", "node-1", "<none>", "<none>"}
	if !reflect.DeepEqual(shape.Rows[0].Cells, wantCells) {
		t.Errorf("rows[0].cells = %#v, want %#v", shape.Rows[0].Cells, wantCells)
	}
	obj := shape.Rows[0].Object
	if obj.Kind != "PartialObjectMetadata" || obj.APIVersion != "meta.k8s.io/v1" ||
		obj.Metadata.Name != "web-1" || obj.Metadata.Namespace != "default" || obj.Metadata.Labels["app"] != "web" {
		t.Errorf("rows[0].object = %+v", obj)
	}
}

func TestTable_includeObject(t *testing.T) {
	for _, tc := range []struct {
		includeObject string
		wantKind      string // of rows[0].object; "" for none
	}{
		{"", "PartialObjectMetadata"},
		{"Metadata", "PartialObjectMetadata"},
		{"None", ""},
		{"Object", "Pod"},
		{"bogus", "PartialObjectMetadata"},
	} {
		t.Run(tc.includeObject, func(t *testing.T) {
			pods := tablePods()
			tbl := Table("", "pods", pods, tc.includeObject, now)
			if tbl.Kind != "Table" || tbl.APIVersion != "meta.k8s.io/v1" {
				t.Errorf("TypeMeta = %+v", tbl.TypeMeta)
			}
			if len(tbl.Rows) != len(pods) {
				t.Fatalf("%d rows, want %d", len(tbl.Rows), len(pods))
			}
			obj := tbl.Rows[0].Object.Object
			if tc.wantKind == "" {
				if obj != nil {
					t.Fatalf("rows[0].object = %T, want none", obj)
				}
				return
			}
			if obj == nil {
				t.Fatal("rows[0].object is empty")
			}
			if k := obj.GetObjectKind().GroupVersionKind().Kind; k != tc.wantKind {
				t.Errorf("rows[0].object kind %q, want %q", k, tc.wantKind)
			}
			if tc.wantKind == "Pod" {
				if v := obj.GetObjectKind().GroupVersionKind().GroupVersion().String(); v != "v1" {
					t.Errorf("rows[0].object apiVersion %q, want v1", v)
				}
				if !pods[0].GetObjectKind().GroupVersionKind().Empty() {
					t.Error("Table changed the caller's object")
				}
				if !reflect.DeepEqual(obj.(*corev1.Pod).Status, pods[0].(*corev1.Pod).Status) {
					t.Error("rows[0].object is not the full pod")
				}
			}
		})
	}
}

func TestTable_rowConditions(t *testing.T) {
	tbl := Table("", "pods", tablePods(), "None", now)
	if c := tbl.Rows[0].Conditions; c != nil {
		t.Errorf("running pod has conditions %+v", c)
	}
	if c := tbl.Rows[1].Conditions; len(c) != 1 || c[0].Type != metav1.RowCompleted {
		t.Errorf("succeeded pod has conditions %+v, want Completed", c)
	}
}

func TestTable_nilObjects(t *testing.T) {
	for _, includeObject := range []string{"None", "Metadata", "Object"} {
		t.Run(includeObject, func(t *testing.T) {
			tbl := Table("", "pods", []runtime.Object{nil, (*corev1.Pod)(nil)}, includeObject, now)
			want := []interface{}{"", "<unknown>", "<unknown>", "<unknown>", "<unknown>", "<unknown>", "<unknown>", "<unknown>", "<unknown>"}
			for i, row := range tbl.Rows {
				if !reflect.DeepEqual(row.Cells, want) {
					t.Errorf("rows[%d].cells = %#v, want %#v", i, row.Cells, want)
				}
				if row.Object.Object != nil {
					t.Errorf("rows[%d].object = %#v, want none", i, row.Object.Object)
				}
			}
			if _, err := json.Marshal(tbl); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}

func TestTable_empty(t *testing.T) {
	got, err := json.Marshal(Table("apps", "deployments", nil, "", now))
	if err != nil {
		t.Fatal(err)
	}
	// kubectl ranges over rows; an empty list must still be an array.
	if !bytes.Contains(got, []byte(`"rows":[]`)) {
		t.Errorf("empty table = %s", got)
	}
}

func TestTable_objectKeepsTypeMeta(t *testing.T) {
	u := source(nil, nil)
	tbl := Table("gitops.kiln.dev", "sources", []runtime.Object{u}, "Object", now)
	if got := tbl.Rows[0].Object.Object; got != u {
		t.Errorf("rows[0].object = %v, want the object itself", got)
	}
}
