// Package simulated is a runtime.Runtime for hollow nodes: sandboxes and
// containers exist only in memory, so a hundred kubelets fit in one test
// process (scale tests of the scheduler and controllers) and the kubelet's
// own tests need neither root nor containerd. It is a simulation, named as
// such (DESIGN.md: "a simulation exists only where real would not fit").
//
// A container "runs" from StartContainer until its pod's annotations say it
// exits, until StopContainer or until its sandbox stops. Pods steer their
// containers with the Annotation* knobs; each knob may be narrowed to one
// container by appending "." and the container's name:
//
//	metadata:
//	  annotations:
//	    sim.kiln.dev/run-duration.init: 200ms   # the "init" container exits after 200ms
//	    sim.kiln.dev/exit-code: "1"             # every container exits 1 (at once)
//
// Sandboxes get addresses from the pod CIDR given by SetPodCIDR, or all
// the same Config.SandboxIP (say 127.0.0.1, so that the kubelet's httpGet
// probes reach a test server). Containers write a few CRI-format lines to
// their LogPath, so the kubelet's log server has something to serve.
//
// Tests read what the kubelet asked for through Configs, StopCalls and
// ExecCalls, and act as the workload would through Exit and
// SetExecExitCode.
//
//	rt := simulated.New(simulated.Config{SandboxIP: "127.0.0.1"})
//	k, err := kubelet.New(kubelet.Config{Runtime: rt, ...})
package simulated
