package apiserver

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/store"
)

func TestDecodeGraphPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{
			NodeName: "a",
			Volumes: []corev1.Volume{
				{Name: "1", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-s"}}},
				{Name: "2", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-c"}}}},
				{Name: "3", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-s"}}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-c"}}},
				}}}},
				{Name: "4", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			InitContainers: []corev1.Container{{Name: "i", EnvFrom: []corev1.EnvFromSource{
				{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-s"}}}}}},
			Containers: []corev1.Container{{Name: "c",
				Env: []corev1.EnvVar{
					{Name: "A", Value: "plain"},
					{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-s"}}}},
					{Name: "C", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-c"}}}},
					{Name: "D", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				},
				EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "vol-c"}}}},
			}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "pull-s"}},
		},
	}
	data, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	p, key, ok := decodeGraphPod(data)
	if !ok || key != "ns/p" || p.node != "a" {
		t.Fatalf("decode: %v %q %q", ok, key, p.node)
	}
	var got []string
	for _, r := range p.refs {
		if r.node != "a" || r.namespace != "ns" {
			t.Errorf("ref %+v: want node a, namespace ns", r)
		}
		got = append(got, r.resource+"/"+r.name)
	}
	slices.Sort(got)
	want := []string{"configmaps/env-c", "configmaps/proj-c", "configmaps/vol-c", "secrets/env-s", "secrets/init-s",
		"secrets/proj-s", "secrets/pull-s", "secrets/vol-s"}
	if !slices.Equal(got, want) {
		t.Errorf("refs (each once):\n got %v\nwant %v", got, want)
	}
	if _, _, ok := decodeGraphPod([]byte("not json")); ok {
		t.Error("garbage decoded")
	}
}

// TestNodeGraph_follows: the graph loads the pods in the store, then
// follows binds, changes of what a pod uses, and deletes.
func TestNodeGraph_follows(t *testing.T) {
	st := runStore(t)
	ctx := t.Context()
	put := func(name, node, secret string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.PodSpec{NodeName: node,
			Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}}}
		data, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Client().Put(ctx, store.Key("", "pods", "ns", name), string(data)); err != nil {
			t.Fatal(err)
		}
	}
	put("before", "a", "s1")
	var g nodeGraph
	g.start(ctx)
	t.Cleanup(g.wait)
	prefix := store.Prefix("", "pods", "")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("graph never got: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("synced", func() bool { return g.ensure(st, prefix) })
	ref := func(node, secret string) nodeRef {
		return nodeRef{node: node, resource: "secrets", namespace: "ns", name: secret}
	}
	if !g.podOn("a", "ns", "before") || !g.uses(ref("a", "s1")) || g.uses(ref("b", "s1")) {
		t.Fatal("the listed pod is not in the graph")
	}
	put("late", "", "s2")
	put("late", "b", "s2") // bound
	waitFor("the bind", func() bool { return g.podOn("b", "ns", "late") && g.uses(ref("b", "s2")) })
	put("late", "b", "s3") // uses another secret
	waitFor("the changed volume", func() bool { return g.uses(ref("b", "s3")) && !g.uses(ref("b", "s2")) })
	put("twin", "b", "s3")
	if _, err := st.Client().Delete(ctx, store.Key("", "pods", "ns", "late")); err != nil {
		t.Fatal(err)
	}
	waitFor("the delete", func() bool { return !g.podOn("b", "ns", "late") && g.podOn("b", "ns", "twin") })
	if !g.uses(ref("b", "s3")) {
		t.Error("s3 closed while another pod on b uses it")
	}
}

// runStore runs an embedded store until the test ends.
func runStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.New(store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	<-st.Ready()
	return st
}
