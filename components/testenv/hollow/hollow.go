package hollow

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/components/testenv"
)

// Defaults of Options.
const (
	DefaultNamePrefix = "hollow"
	// DefaultQPS and DefaultBurst are the kubelet's own defaults
	// (--kube-api-qps, --kube-api-burst).
	DefaultQPS   = 50
	DefaultBurst = 100
	// readyTimeout bounds the wait for the Nodes to be Ready, and for a
	// kubelet to return after Stop.
	readyTimeout = 2 * time.Minute
)

// DefaultCapacity is what a hollow Node claims: a modest machine with the
// kubelet's default of 110 Pods.
func DefaultCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("16Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// Options tune the hollow nodes; only Nodes is required.
type Options struct {
	// Nodes is how many to start, named <NamePrefix>-000, -001, ...
	Nodes int
	// NamePrefix defaults to DefaultNamePrefix.
	NamePrefix string
	// Kubelet, when set, adjusts each kubelet's Config before it is made:
	// a node-loss test shortens LeaseDuration and StatusPeriod. The
	// defaults pace the kubelets as real ones (a 40 s Lease renewed every
	// 10 s, status every 10 s, a relist every second).
	Kubelet func(*kubelet.Config)
	// Runtime configures each Node's simulated runtime. Sandboxes get
	// addresses from a /24 per Node (10.42.<i>.0/24, as node IPAM would
	// give), unless Runtime.SandboxIP is set.
	Runtime simulated.Config
	// QPS and Burst limit each kubelet's client; defaults DefaultQPS and
	// DefaultBurst.
	QPS   float32
	Burst int
	// Logger receives the kubelets' logs; nil means warnings and errors
	// to the test's output.
	Logger *slog.Logger
}

// Node is one hollow node: a kubelet, which can be stopped and restarted,
// on a simulated runtime, which outlives it.
type Node struct {
	// Name is the Node's name.
	Name string
	// Runtime is the Node's simulated runtime, for tests to steer
	// containers (Exit) and read what the kubelet asked for.
	Runtime *simulated.Runtime

	tb  testing.TB
	cfg kubelet.Config

	mu   sync.Mutex
	stop func() // nil while no kubelet runs
}

// Start starts opts.Nodes hollow nodes on env and waits until every Node
// is Ready. They stop when the test ends, before env does.
func Start(tb testing.TB, env *testenv.Env, opts Options) []*Node {
	tb.Helper()
	if opts.Nodes <= 0 {
		tb.Fatalf("hollow: Options.Nodes must be positive, got %d", opts.Nodes)
	}
	if opts.NamePrefix == "" {
		opts.NamePrefix = DefaultNamePrefix
	}
	if opts.QPS == 0 {
		opts.QPS = DefaultQPS
	}
	if opts.Burst == 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// testenv wrote the cluster CA here; one serving certificate for
	// 127.0.0.1 serves every kubelet's log server.
	tlsDir := filepath.Join(env.DataDir, "tls")
	ca, err := pki.EnsureCA(tlsDir)
	if err != nil {
		tb.Fatalf("hollow: load CA: %v", err)
	}
	cert, err := ca.EnsureServing(tlsDir, "hollow-kubelet", []string{"127.0.0.1"})
	if err != nil {
		tb.Fatalf("hollow: serving certificate: %v", err)
	}

	nodes := make([]*Node, opts.Nodes)
	for i := range nodes {
		rc := rest.CopyConfig(env.RESTConfig)
		rc.QPS, rc.Burst = opts.QPS, opts.Burst
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			tb.Fatalf("hollow: client: %v", err)
		}
		rt := simulated.New(opts.Runtime)
		if opts.Runtime.SandboxIP == "" {
			cidr := fmt.Sprintf("10.%d.%d.0/24", 42+i/256, i%256)
			if err := rt.SetPodCIDR(tb.Context(), cidr); err != nil {
				tb.Fatalf("hollow: %v", err)
			}
		}
		name := fmt.Sprintf("%s-%03d", opts.NamePrefix, i)
		cfg := kubelet.Config{
			Client:         cs,
			NodeName:       name,
			Runtime:        rt,
			RootDir:        tb.TempDir(),
			NodeIP:         "127.0.0.1",
			ServerAddr:     "127.0.0.1:0",
			TLS:            &cert,
			Capacity:       DefaultCapacity(),
			NoHostPressure: true,
			Logger:         opts.Logger,
		}
		if opts.Kubelet != nil {
			opts.Kubelet(&cfg)
		}
		nodes[i] = &Node{Name: name, Runtime: rt, tb: tb, cfg: cfg}
	}
	// Stopped together at cleanup: a hundred kubelets each finishing
	// its pod workers one after the other would take a while.
	tb.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.Stop)
		}
		wg.Wait()
	})
	for _, n := range nodes {
		n.Restart()
	}
	waitReady(tb, env.Clientset, nodes)
	return nodes
}

// waitReady polls until every Node reports Ready.
func waitReady(tb testing.TB, cs kubernetes.Interface, nodes []*Node) {
	tb.Helper()
	want := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		want[n.Name] = true
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		l, err := cs.CoreV1().Nodes().List(tb.Context(), metav1.ListOptions{})
		ready := 0
		if err == nil {
			for i := range l.Items {
				if want[l.Items[i].Name] && Ready(&l.Items[i]) {
					ready++
				}
			}
		}
		if ready == len(want) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("hollow: %d of %d nodes Ready after %v (last error: %v)", ready, len(want), readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ready reports whether a Node's Ready condition is True.
func Ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Stop stops the Node's kubelet and waits for it to return, as when the
// kubelet dies: its Lease and status stop being renewed, and the runtime's
// containers keep running. Stopping a stopped Node does nothing.
func (n *Node) Stop() {
	n.mu.Lock()
	stop := n.stop
	n.stop = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart starts a kubelet for the Node, on its runtime and root dir, as a
// restarted kubelet process: it registers the Node again, adopts the
// containers still running and renews the Lease. It does not wait for the
// Node to be Ready. Restarting a running Node does nothing.
func (n *Node) Restart() {
	n.tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		return
	}
	k, err := kubelet.New(n.cfg)
	if err != nil {
		n.tb.Fatalf("hollow: %s: %v", n.Name, err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(n.tb.Context()))
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	n.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				n.tb.Errorf("hollow: %s: kubelet: %v", n.Name, err)
			}
		case <-time.After(readyTimeout):
			n.tb.Errorf("hollow: %s: kubelet did not return within %v of Stop", n.Name, readyTimeout)
		}
	}
}
