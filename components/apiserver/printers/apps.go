package printers

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The descriptions come from the same (older) API versions kube-apiserver
// takes them from, so that they match word for word.

func containersColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Containers", Type: "string", Priority: 1, Description: "Names of each container in the template."}
}

func imagesColumn() metav1.TableColumnDefinition {
	return metav1.TableColumnDefinition{Name: "Images", Type: "string", Priority: 1, Description: "Images referenced by each container in the template."}
}

func deploymentColumns() []metav1.TableColumnDefinition {
	status := extensionsv1beta1.DeploymentStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
		{Name: "Up-to-date", Type: "string", Description: status["updatedReplicas"]},
		{Name: "Available", Type: "string", Description: status["availableReplicas"]},
		ageColumn(),
		containersColumn(),
		imagesColumn(),
		{Name: "Selector", Type: "string", Priority: 1, Description: extensionsv1beta1.DeploymentSpec{}.SwaggerDoc()["selector"]},
	}
}

func printDeployment(d *appsv1.Deployment, now time.Time) []interface{} {
	selector := "<invalid>"
	if s, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err == nil {
		selector = s.String()
	}
	names, images := layoutContainerCells(d.Spec.Template.Spec.Containers)
	return []interface{}{
		d.Name,
		fmt.Sprintf("%d/%d", int64(d.Status.ReadyReplicas), int64(replicas(d.Spec.Replicas))),
		int64(d.Status.UpdatedReplicas),
		int64(d.Status.AvailableReplicas),
		age(d.CreationTimestamp, now),
		names, images, selector,
	}
}

func replicaSetColumns() []metav1.TableColumnDefinition {
	spec := extensionsv1beta1.ReplicaSetSpec{}.SwaggerDoc()
	status := extensionsv1beta1.ReplicaSetStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Desired", Type: "integer", Description: spec["replicas"]},
		{Name: "Current", Type: "integer", Description: status["replicas"]},
		{Name: "Ready", Type: "integer", Description: status["readyReplicas"]},
		ageColumn(),
		containersColumn(),
		imagesColumn(),
		{Name: "Selector", Type: "string", Priority: 1, Description: spec["selector"]},
	}
}

func printReplicaSet(rs *appsv1.ReplicaSet, now time.Time) []interface{} {
	names, images := layoutContainerCells(rs.Spec.Template.Spec.Containers)
	return []interface{}{
		rs.Name,
		int64(replicas(rs.Spec.Replicas)),
		int64(rs.Status.Replicas),
		int64(rs.Status.ReadyReplicas),
		age(rs.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(rs.Spec.Selector),
	}
}

func daemonSetColumns() []metav1.TableColumnDefinition {
	status := extensionsv1beta1.DaemonSetStatus{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Desired", Type: "integer", Description: status["desiredNumberScheduled"]},
		{Name: "Current", Type: "integer", Description: status["currentNumberScheduled"]},
		{Name: "Ready", Type: "integer", Description: status["numberReady"]},
		{Name: "Up-to-date", Type: "integer", Description: status["updatedNumberScheduled"]},
		{Name: "Available", Type: "integer", Description: status["numberAvailable"]},
		{Name: "Node Selector", Type: "string", Description: corev1.PodSpec{}.SwaggerDoc()["nodeSelector"]},
		ageColumn(),
		containersColumn(),
		imagesColumn(),
		{Name: "Selector", Type: "string", Priority: 1, Description: extensionsv1beta1.DaemonSetSpec{}.SwaggerDoc()["selector"]},
	}
}

func printDaemonSet(ds *appsv1.DaemonSet, now time.Time) []interface{} {
	names, images := layoutContainerCells(ds.Spec.Template.Spec.Containers)
	return []interface{}{
		ds.Name,
		int64(ds.Status.DesiredNumberScheduled),
		int64(ds.Status.CurrentNumberScheduled),
		int64(ds.Status.NumberReady),
		int64(ds.Status.UpdatedNumberScheduled),
		int64(ds.Status.NumberAvailable),
		labels.FormatLabels(ds.Spec.Template.Spec.NodeSelector),
		age(ds.CreationTimestamp, now),
		names, images, metav1.FormatLabelSelector(ds.Spec.Selector),
	}
}

func statefulSetColumns() []metav1.TableColumnDefinition {
	return []metav1.TableColumnDefinition{
		nameColumn(),
		{Name: "Ready", Type: "string", Description: "Number of the pod with ready state"},
		ageColumn(),
		containersColumn(),
		imagesColumn(),
	}
}

func printStatefulSet(ss *appsv1.StatefulSet, now time.Time) []interface{} {
	names, images := layoutContainerCells(ss.Spec.Template.Spec.Containers)
	return []interface{}{
		ss.Name,
		fmt.Sprintf("%d/%d", int64(ss.Status.ReadyReplicas), int64(replicas(ss.Spec.Replicas))),
		age(ss.CreationTimestamp, now),
		names, images,
	}
}

// replicas reads spec.replicas; unset means 1, what defaulting sets (kube
// only ever prints defaulted objects).
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// layoutContainerCells joins the containers' names and images with commas.
func layoutContainerCells(containers []corev1.Container) (names, images string) {
	n := make([]string, len(containers))
	i := make([]string, len(containers))
	for k, c := range containers {
		n[k], i[k] = c.Name, c.Image
	}
	return strings.Join(n, ","), strings.Join(i, ",")
}
