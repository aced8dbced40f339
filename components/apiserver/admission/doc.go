// Package admission defaults and validates the typed Kubernetes objects that
// the apiserver stores, the way kube-apiserver's defaulters and validation do.
//
// It owns the hand-written subset of k8s.io/kubernetes/pkg/apis/*/v1 defaults
// and pkg/apis/*/validation that kiln's other components rely on: pod specs
// (in Pods and in every PodTemplateSpec), Deployments, ReplicaSets,
// DaemonSets, StatefulSets, Jobs, CronJobs, ReplicationControllers,
// PodTemplates, Services, Endpoints, ConfigMaps, Secrets, Namespaces, Nodes,
// ServiceAccounts, RBAC objects, Ingresses, PersistentVolumeClaims,
// PersistentVolumes and Events. Any other object gets ObjectMeta validation
// only. Field paths and error types follow Kubernetes (metadata.name,
// spec.template.spec.containers[0].image, ...) so that clients such as kubectl
// print the messages they would print against a real cluster.
//
// The package is pure: it talks to nothing, keeps no state, and never panics
// on a decoded object, however malformed. The apiserver calls it between
// decoding a request body and writing to the store:
//
//	obj := &appsv1.Deployment{}
//	if err := json.Unmarshal(body, obj); err != nil { ... }
//	admission.Default(obj)
//	if errs := admission.Validate(obj, true); len(errs) > 0 {
//		return apierrors.NewInvalid(gk, obj.Name, errs)
//	}
//
// and, on update, Default followed by ValidateUpdate(obj, old, namespaced).
//
// Like kube-apiserver, Validate expects a defaulted object: fields that
// defaulting always fills (restartPolicy, imagePullPolicy, service type, ...)
// are reported as required when they are empty.
//
// Steps that kube-apiserver performs in its registry strategies rather than
// in defaulting are left to the caller, except where noted on Default:
// generateName resolution, uid/creationTimestamp/resourceVersion, carrying
// allocated values (clusterIP, nodePorts) over on update, and status resets.
// In particular the caller assigns the uid before calling Default on a
// create (Jobs derive their selector from it), and fills in resourceVersion
// before ValidateUpdate on an unconditional update.
//
// CronJob time zones are loaded with time.LoadLocation; a binary that may
// run without a system zoneinfo database should import time/tzdata.
package admission
