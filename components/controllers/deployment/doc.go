// Package deployment is kiln's Deployment controller, kube's
// pkg/controller/deployment written afresh. It owns the ReplicaSets of
// every Deployment: it creates the ReplicaSet of the current pod template
// (named <deployment>-<pod-template-hash>), scales it up and the older ones
// down as the strategy allows (RollingUpdate with maxSurge and
// maxUnavailable, or Recreate), records revisions, prunes history beyond
// revisionHistoryLimit and writes the Deployment's status and its
// Progressing and Available conditions, which `kubectl rollout status`
// reads.
//
// It talks only to the API server: informers on Deployments, ReplicaSets
// and Pods from a shared factory, and writes of ReplicaSets and of
// Deployment metadata and status. Pods are made by the ReplicaSet
// controller, not here; this controller only reads them, to wait for old
// pods to be gone in a Recreate rollout.
//
// It differs from kube's controller where kiln differs, or on purpose:
//   - the pod-template-hash is fnv32a over the template's JSON, not over a
//     spew dump, so the names differ from kube's for the same template
//     (nothing depends on them: a ReplicaSet is found again by comparing
//     templates);
//   - the Deployment's revision annotation is written with a merge patch
//     of the main resource, since kiln's status subresource keeps
//     metadata, where kube's lets the status update carry it;
//   - a rolling update counts an old ReplicaSet as the larger of its size
//     and the pods it still reports, so that maxSurge bounds the pods
//     that exist, not only those requested (see newRSNewReplicas).
//
// With Config.Events it records kube's Events about the Deployment:
// ScalingReplicaSet for every change of a ReplicaSet's size ("Scaled up
// replica set web-7d9 from 0 to 3"), ReplicaSetCreateError when the new
// ReplicaSet cannot be created; kubectl describe deployment shows them.
//
// Usage, as the controller manager does it:
//
//	f := informers.NewSharedInformerFactory(cs, 10*time.Minute)
//	c, err := deployment.New(deployment.Config{Client: cs, Informers: f})
//	if err != nil {
//		return err
//	}
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package deployment
