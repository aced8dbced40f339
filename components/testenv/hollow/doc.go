// Package hollow runs hollow nodes for tests and benchmarks of the control
// plane: each is the real kubelet (components/kubelet) on the simulated
// runtime (components/kubelet/simulated), so a hundred of them fit in one
// test process. They register their Node, renew its Lease, run the Pods
// the scheduler binds to them through the kubelet's pod workers and report
// honest status over the API server of a testenv.Env, like any kubelet.
// Only the containers are simulated (DESIGN.md: "a simulation exists only
// where real would not fit").
//
// Each kubelet has its own client with the kubelet's default rate limits,
// so that a hundred of them load the API as a hundred kubelets would. A
// Node can be stopped (its Lease and status stop, as when its kubelet
// dies) and restarted (a new kubelet on the same runtime adopts what it
// still runs), for node-loss tests.
//
//	env := testenv.Start(t, testenv.Options{})
//	nodes := hollow.Start(t, env, hollow.Options{Nodes: 3})
//	nodes[0].Stop()    // the Node goes Unknown after the grace period
//	nodes[0].Restart() // and Ready again
package hollow
