// Package containerd is the kubelet's real container runtime: it
// implements runtime.Runtime with containerd (images, snapshots, runc
// containers) and CNI (one network namespace per pod on a bridge).
//
// By default it starts and supervises its own containerd as a child
// process, with its config, root, state and socket under
// RootDir/containerd (as k3s does), restarts it if it dies and stops it
// when Run returns; with Config.Endpoint it uses an existing containerd
// and starts nothing. Containers live in one containerd namespace per
// node, so several kubelets can share a host. The runc shims outlive
// containerd and kiln, so a restarted kiln adopts the containers that are
// still running: their records, labels and log streams survive.
//
// It talks to containerd over its gRPC socket, to the CNI plugins (bridge,
// host-local and portmap from CNIBinDir) through libcni, and to iptables
// for one masquerade chain per node (network.go says why not the plugins'
// own); the kubelet drives it through the runtime.Runtime interface.
//
// Files under RootDir/containerd: config.toml, containerd.log and
// containerd.pid of the supervised daemon; root/ and state/ (containerd's
// own; state/ is a tmpfs, runc's state included, kept while tasks run and
// removed at a stop that leaves none); netns/<sandbox> (bind-mounted network namespaces); io/<container>
// (the stdout/stderr FIFOs kiln relays into each container's LogPath in
// the CRI format, rotated at Config.LogMaxSize); cni/net.d (the network config), cni/networks (host-local
// IPs) and cni/cache (libcni's results, for DEL after a restart).
//
//	rt, err := containerd.New(containerd.Config{RootDir: "/var/lib/kiln", Namespace: "node-1"})
//	if err != nil { ... }
//	go rt.Run(ctx) // blocks until ctx is done
//	<-rt.Ready()   // containerd is serving, archives are imported
//	_ = rt.SetPodCIDR(ctx, "10.42.0.0/24")
//	sb, err := rt.RunPodSandbox(ctx, &runtime.SandboxConfig{...})
package containerd
