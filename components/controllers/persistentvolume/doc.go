// Package persistentvolume is kiln's PersistentVolume controller: kube's
// binder (pkg/controller/volume/persistentvolume) for the cases kiln
// needs, with the built-in local-path provisioner that k3s ships as
// rancher's local-path-provisioner.
//
//   - Provisioning: a claim of a class whose provisioner is
//     kiln.dev/local-path gets, once the scheduler has set
//     volume.kubernetes.io/selected-node on it, a PersistentVolume named
//     pvc-<claim uid>: a hostPath (DirectoryOrCreate) at
//     <node's storage dir>/pvc-<uid>_<namespace>_<name>, where the storage
//     dir is the kiln.dev/local-path-dir annotation the node's kubelet
//     publishes on its Node; node affinity on kubernetes.io/hostname; the
//     claim's request, access modes and class; the class's reclaim policy;
//     a claimRef to the claim; and the kiln.dev/local-path-cleanup
//     finalizer, which that node's kubelet removes once it has deleted the
//     directory. A class with volumeBindingMode Immediate cannot be
//     provisioned (the node is not known yet): such claims stay Pending
//     with a ProvisioningFailed event saying why.
//   - Binding: a claim naming a volume, or the smallest Available volume
//     of its class that is large enough, has the access modes and (for
//     WaitForFirstConsumer) allows the selected node, is bound both ways:
//     the volume's claimRef and the claim's volumeName, both Bound, with
//     kube's pv.kubernetes.io/bind-completed and bound-by-controller
//     annotations.
//   - Release: a volume whose claim is gone is Released; then reclaim
//     policy Delete deletes it, Retain keeps it. Recycle is not
//     implemented (the volume is Failed).
//
// Not implemented: storage-object-in-use protection (pvc-protection,
// pv-protection), volume expansion, data sources, other provisioners (such
// claims wait, as for an external provisioner) and the Lost claim's
// recovery.
//
// It talks only to the API server: PVC, PV, StorageClass and Node
// informers from the shared factory, and writes to PVCs, PVs and Events.
//
//	c, err := persistentvolume.New(persistentvolume.Config{Client: cs, Informers: f})
//	f.Start(ctx.Done())
//	err = c.Run(ctx) // blocks until ctx is done
package persistentvolume
