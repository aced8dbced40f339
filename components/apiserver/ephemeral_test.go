package apiserver_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/testenv"
)

// TestEphemeralContainers_subresource: pods/ephemeralcontainers (kubectl
// debug) adds ephemeral containers and nothing else; existing ones may
// not change or go, a plain pod update may not add one, and what an
// ephemeral container may not have (ports) is refused.
func TestEphemeralContainers_subresource(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	pods := env.Clientset.CoreV1().Pods("default")
	pod, err := pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	debugger := corev1.EphemeralContainer{TargetContainerName: "app", EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debugger", Image: "tools:1", Stdin: true}}

	// A plain update may not add one.
	plain := pod.DeepCopy()
	plain.Spec.EphemeralContainers = []corev1.EphemeralContainer{debugger}
	if _, err := pods.Update(ctx, plain, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("plain update adding an ephemeral container: %v, want Invalid", err)
	}

	// The subresource adds it, defaulted; other changes in the body are
	// ignored.
	add := pod.DeepCopy()
	add.Spec.EphemeralContainers = []corev1.EphemeralContainer{debugger}
	add.Labels = map[string]string{"sneaked": "in"}
	got, err := pods.UpdateEphemeralContainers(ctx, "app", add, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("adding an ephemeral container: %v", err)
	}
	if len(got.Spec.EphemeralContainers) != 1 || got.Spec.EphemeralContainers[0].TerminationMessagePolicy == "" || got.Labels["sneaked"] != "" {
		t.Fatalf("after the add: ephemeral %+v, labels %v", got.Spec.EphemeralContainers, got.Labels)
	}

	changed := got.DeepCopy()
	changed.Spec.EphemeralContainers[0].Image = "tools:2"
	if _, err := pods.UpdateEphemeralContainers(ctx, "app", changed, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("changing an ephemeral container: %v, want Invalid", err)
	}
	removed := got.DeepCopy()
	removed.Spec.EphemeralContainers = nil
	if _, err := pods.UpdateEphemeralContainers(ctx, "app", removed, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("removing an ephemeral container: %v, want Invalid", err)
	}
	withPorts := got.DeepCopy()
	withPorts.Spec.EphemeralContainers = append(withPorts.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "second", Image: "tools:1", Ports: []corev1.ContainerPort{{ContainerPort: 80}}}})
	if _, err := pods.UpdateEphemeralContainers(ctx, "app", withPorts, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("an ephemeral container with ports: %v, want Invalid", err)
	}
	clash := got.DeepCopy()
	clash.Spec.EphemeralContainers = append(clash.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "app", Image: "tools:1"}})
	if _, err := pods.UpdateEphemeralContainers(ctx, "app", clash, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Errorf("an ephemeral container named like the app's: %v, want Invalid", err)
	}
}
