// Package kubelet is kiln's node agent. It registers its Node (capacity,
// addresses, nodeInfo, conditions) and renews the Node's Lease, watches the
// Pods bound to the Node and makes them real through a runtime.Runtime, and
// reports the truth back in each Pod's status. It talks to nothing but the
// API server (client-go) and its Runtime: the containerd package in real
// deployments, the simulated package on hollow nodes and in tests.
//
// What it owns, as the Kubernetes kubelet does:
//
//   - one worker goroutine per pod, woken by the pod's changes, by the
//     runtime relist (a container exited), by probe results and by timers;
//     a sync ensures the sandbox, writes etc-hosts, resolv.conf and the
//     volumes under RootDir/pods/<uid>/, pulls images by imagePullPolicy,
//     resolves env (valueFrom, envFrom, service links, $(VAR)), runs init
//     containers in order and then the app containers;
//   - restart policies with the crash back-off (10 s doubling to 5 min,
//     CrashLoopBackOff), image pull back-off (ErrImagePull,
//     ImagePullBackOff), liveness, readiness and startup probes;
//   - graceful termination: preStop, SIGTERM, SIGKILL at the end of the
//     grace period, then the pod object's final delete;
//   - status (phase, conditions, IPs, container statuses), written as a
//     strategic merge patch only when it changed, and Events;
//   - an HTTPS server with /containerLogs/<ns>/<pod>/<container> (what
//     the API server's pods/log proxies to) and /healthz; callers are
//     checked by TokenReview and SubjectAccessReview;
//   - restart safety: at start it adopts what the runtime still runs for
//     pods still bound here and removes the rest;
//   - persistentVolumeClaim volumes: claim, then its volume (hostPath or
//     local) through the API, mounted once the claim is Bound (until then
//     the pod waits, ContainerCreating, naming the claim); for the
//     local-path provisioner it publishes Config.StorageDir on its Node
//     and removes the directory of each deleted volume provisioned here
//     before taking the volume's cleanup finalizer off.
//
// Files of a pod live in RootDir/pods/<uid>/: containers/<name>/<attempt>.log
// (CRI log format), volumes/<name>/, etc-hosts and resolv.conf. Each
// kubelet needs a RootDir of its own.
//
//	k, err := kubelet.New(kubelet.Config{
//		Client: cs, NodeName: "node-1", Runtime: rt, RootDir: "/var/lib/kiln",
//		NodeIP: "10.0.0.5", TLS: &cert,
//	})
//	err = k.Run(ctx) // blocks until ctx is done; containers keep running
package kubelet
