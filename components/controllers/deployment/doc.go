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
//	f := informers.NewSharedInformerFactory(cs, 10*time.Minute)
//	c, err := deployment.New(deployment.Config{Client: cs, Informers: f})
//	if err != nil {
//		return err
//	}
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package deployment
