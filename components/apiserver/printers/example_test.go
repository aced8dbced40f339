package printers_test

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"kiln.dev/kiln/components/apiserver/printers"
)

func ExampleTable() {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	replicas := int32(3)
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", CreationTimestamp: metav1.NewTime(now.Add(-90 * time.Minute))},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status:     appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
	}

	tbl := printers.Table("apps", "deployments", []runtime.Object{web}, "Metadata", now)
	var shown []string
	for i, col := range tbl.ColumnDefinitions {
		if col.Priority == 0 { // what kubectl shows without -o wide
			shown = append(shown, fmt.Sprintf("%s=%v", col.Name, tbl.Rows[0].Cells[i]))
		}
	}
	fmt.Println(strings.Join(shown, " "))
	fmt.Println(tbl.Rows[0].Object.Object.GetObjectKind().GroupVersionKind().Kind)
	// Output:
	// Name=web Ready=2/3 Up-to-date=3 Available=2 Age=90m
	// PartialObjectMetadata
}
