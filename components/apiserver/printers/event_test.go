package printers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func event(mutate func(*corev1.Event)) *corev1.Event {
	e := &corev1.Event{
		ObjectMeta:     objMeta("web-1.17f0a1"),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-1", Namespace: "default", FieldPath: "spec.containers{web}"},
		Reason:         "Pulled",
		Message:        "  Container image \"nginx:1.27\" already present on machine\n",
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp: ago(10 * time.Minute),
		LastTimestamp:  ago(2 * time.Minute),
		Count:          3,
		Type:           corev1.EventTypeNormal,
	}
	if mutate != nil {
		mutate(e)
	}
	return e
}

func TestRow_events(t *testing.T) {
	const msg = "Container image \"nginx:1.27\" already present on machine"
	row := func(last, object, subobject, source, first string, count int64) []interface{} {
		return []interface{}{last, "Normal", "Pulled", object, subobject, source, msg, first, count, "web-1.17f0a1"}
	}
	runRows(t, "", "events", []rowCase{
		{
			name: "last seen from lastTimestamp",
			obj:  event(nil),
			want: row("2m", "pod/web-1", "spec.containers{web}", "kubelet, node-1", "10m", 3),
		},
		{
			name: "no lastTimestamp uses firstTimestamp",
			obj:  event(func(e *corev1.Event) { e.LastTimestamp = metav1.Time{} }),
			want: row("10m", "pod/web-1", "spec.containers{web}", "kubelet, node-1", "10m", 3),
		},
		{
			name: "new API event with eventTime only",
			obj: event(func(e *corev1.Event) {
				e.FirstTimestamp, e.LastTimestamp, e.Count = metav1.Time{}, metav1.Time{}, 0
				e.EventTime = metav1.NewMicroTime(now.Add(-45 * time.Second))
				e.Source = corev1.EventSource{}
				e.ReportingController, e.ReportingInstance = "default-scheduler", "kiln-server"
			}),
			want: row("45s", "pod/web-1", "spec.containers{web}", "default-scheduler, kiln-server", "45s", 1),
		},
		{
			name: "series",
			obj: event(func(e *corev1.Event) {
				e.Series = &corev1.EventSeries{Count: 7, LastObservedTime: metav1.NewMicroTime(now.Add(-20 * time.Second))}
			}),
			want: row("20s", "pod/web-1", "spec.containers{web}", "kubelet, node-1", "10m", 7),
		},
		{
			name: "no timestamps",
			obj: event(func(e *corev1.Event) {
				e.FirstTimestamp, e.LastTimestamp = metav1.Time{}, metav1.Time{}
				e.InvolvedObject = corev1.ObjectReference{Kind: "Node"}
				e.Source = corev1.EventSource{Component: "kubelet"}
			}),
			want: row("<unknown>", "node", "", "kubelet", "<unknown>", 3),
		},
	})
}

func TestRow_eventsV1(t *testing.T) {
	runRows(t, "events.k8s.io", "events", []rowCase{
		{
			name: "converted like a core event",
			obj: &eventsv1.Event{
				ObjectMeta:          objMeta("web.1"),
				EventTime:           metav1.NewMicroTime(now.Add(-3 * time.Minute)),
				Series:              &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(now.Add(-time.Minute))},
				ReportingController: "kiln.dev/deployment-controller",
				ReportingInstance:   "kiln-server",
				Action:              "Scale",
				Reason:              "ScalingReplicaSet",
				Regarding:           corev1.ObjectReference{Kind: "Deployment", Name: "web"},
				Note:                "Scaled up replica set web-7d4b9 to 3",
				Type:                corev1.EventTypeNormal,
			},
			want: []interface{}{"60s", "Normal", "ScalingReplicaSet", "deployment/web", "", "kiln.dev/deployment-controller, kiln-server",
				"Scaled up replica set web-7d4b9 to 3", "3m", int64(2), "web.1"},
		},
	})
}
