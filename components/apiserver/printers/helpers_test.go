package printers

import (
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// now is the fixed "current time" of every test.
var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// ago returns the metav1.Time d before now.
func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

// agoPtr returns a pointer to ago(d).
func agoPtr(d time.Duration) *metav1.Time {
	t := ago(d)
	return &t
}

// objMeta returns ObjectMeta named name, created five minutes before now.
func objMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(5 * time.Minute)}
}

func ptr[T any](v T) *T { return &v }

// rowCase is one golden row: obj printed as resource must give want.
type rowCase struct {
	name string
	obj  runtime.Object
	want []interface{}
}

// runRows checks each case's row against its golden cells, and its length
// against the resource's columns.
func runRows(t *testing.T, group, resource string, cases []rowCase) {
	t.Helper()
	cols := Columns(group, resource)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Row(group, resource, tc.obj, now)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Row(%q, %q) =\n  %#v\nwant\n  %#v", group, resource, got, tc.want)
			}
			if len(got) != len(cols) {
				t.Errorf("row has %d cells, want %d (one per column)", len(got), len(cols))
			}
		})
	}
}
