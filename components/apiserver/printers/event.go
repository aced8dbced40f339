package printers

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// eventColumns serves core and events.k8s.io Events alike, as kube does.
func eventColumns() []metav1.TableColumnDefinition {
	doc := corev1.Event{}.SwaggerDoc()
	return []metav1.TableColumnDefinition{
		{Name: "Last Seen", Type: "string", Description: doc["lastTimestamp"]},
		{Name: "Type", Type: "string", Description: doc["type"]},
		{Name: "Reason", Type: "string", Description: doc["reason"]},
		{Name: "Object", Type: "string", Description: doc["involvedObject"]},
		{Name: "Subobject", Type: "string", Priority: 1, Description: corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]},
		{Name: "Source", Type: "string", Priority: 1, Description: doc["source"]},
		{Name: "Message", Type: "string", Description: doc["message"]},
		{Name: "First Seen", Type: "string", Priority: 1, Description: doc["firstTimestamp"]},
		{Name: "Count", Type: "string", Priority: 1, Description: doc["count"]},
		{Name: "Name", Type: "string", Priority: 1, Format: "name", Description: objectMetaDoc("name")},
	}
}

func printEvent(ev *corev1.Event, now time.Time) []interface{} {
	firstTimestamp := age(ev.FirstTimestamp, now)
	if ev.FirstTimestamp.IsZero() {
		firstTimestamp = microAge(ev.EventTime, now)
	}

	lastTimestamp := age(ev.LastTimestamp, now)
	if ev.LastTimestamp.IsZero() {
		lastTimestamp = firstTimestamp
	}

	count := ev.Count
	if ev.Series != nil {
		lastTimestamp = microAge(ev.Series.LastObservedTime, now)
		count = ev.Series.Count
	} else if count == 0 {
		// Singleton events don't have a count set in the new API.
		count = 1
	}

	target := strings.ToLower(ev.InvolvedObject.Kind)
	if ev.InvolvedObject.Name != "" {
		target = fmt.Sprintf("%s/%s", target, ev.InvolvedObject.Name)
	}

	return []interface{}{
		lastTimestamp,
		ev.Type,
		ev.Reason,
		target,
		ev.InvolvedObject.FieldPath,
		formatEventSource(ev.Source, ev.ReportingController, ev.ReportingInstance),
		strings.TrimSpace(ev.Message),
		firstTimestamp,
		int64(count),
		ev.Name,
	}
}

// printEventsV1Event prints an events.k8s.io Event as the core Event it
// converts to; kube-apiserver stores and prints both as one internal type.
func printEventsV1Event(ev *eventsv1.Event, now time.Time) []interface{} {
	core := &corev1.Event{
		ObjectMeta:          ev.ObjectMeta,
		InvolvedObject:      ev.Regarding,
		Reason:              ev.Reason,
		Message:             ev.Note,
		Source:              ev.DeprecatedSource,
		FirstTimestamp:      ev.DeprecatedFirstTimestamp,
		LastTimestamp:       ev.DeprecatedLastTimestamp,
		Count:               ev.DeprecatedCount,
		Type:                ev.Type,
		EventTime:           ev.EventTime,
		Action:              ev.Action,
		ReportingController: ev.ReportingController,
		ReportingInstance:   ev.ReportingInstance,
	}
	if ev.Series != nil {
		core.Series = &corev1.EventSeries{Count: ev.Series.Count, LastObservedTime: ev.Series.LastObservedTime}
	}
	return printEvent(core, now)
}

// formatEventSource formats the source as "component, host", using
// reportingController and reportingInstance where the source is empty.
func formatEventSource(es corev1.EventSource, reportingController, reportingInstance string) string {
	component := cmp.Or(es.Component, reportingController)
	instance := cmp.Or(es.Host, reportingInstance)
	if instance == "" {
		return component
	}
	return component + ", " + instance
}
