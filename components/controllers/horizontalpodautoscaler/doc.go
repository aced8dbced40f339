// Package horizontalpodautoscaler is kiln's HorizontalPodAutoscaler
// controller, kube's pkg/controller/podautoscaler written afresh for
// resource metrics: every SyncPeriod it reads each HPA's target through
// the scale subresource (Deployment, ReplicaSet, StatefulSet,
// ReplicationController), the target's pods from the shared Pod informer
// and their usage from the resource metrics API (metrics.k8s.io/v1beta1,
// which kiln's API server serves from the kubelets), computes the
// replica count kube's replica calculator would, stabilizes and
// rate-limits it as kube's behavior rules do, writes it through the
// scale subresource and reports in the HPA's status, conditions and
// Events what kube reports.
//
// It reads autoscaling/v2 HPAs. Resource and ContainerResource metrics
// (cpu, memory; Utilization and AverageValue targets) are computed;
// Pods, Object and External metrics need a custom or external metrics
// API, which kiln does not serve, and are reported as kube reports an
// unreachable one (FailedGetPodsMetric, ...).
//
// Recommendations and scale events, which stabilization windows and
// scaling policies look back on, live in memory as in kube: a new
// leader starts from the target's current scale.
//
//	c, err := horizontalpodautoscaler.New(horizontalpodautoscaler.Config{
//		Client: cs, Metrics: mcs, Informers: f, Events: b})
//	if err != nil { ... }
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package horizontalpodautoscaler
