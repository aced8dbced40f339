package nodeipam_test

// Tests of the node-ipam controller against a real etcd and API server
// (testenv).

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"kiln.dev/kiln/components/controllers/nodeipam"
	"kiln.dev/kiln/components/testenv"
)

const waitLimit = 30 * time.Second

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// run starts a controller on a fresh informer factory; stop cancels it
// and waits for Run (also at cleanup).
func run(t *testing.T, cs kubernetes.Interface, cfg nodeipam.Config) (stop func()) {
	t.Helper()
	f := informers.NewSharedInformerFactory(cs, 0)
	cfg.Client, cfg.Informers, cfg.Logger = cs, f, testLogger(t)
	c, err := nodeipam.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	f.Start(ctx.Done())
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLimit):
				t.Errorf("Run did not return within %v", waitLimit)
			}
			f.Shutdown()
		})
	}
	t.Cleanup(stop)
	return stop
}

func createNode(t *testing.T, cs kubernetes.Interface, name, podCIDR string) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if podCIDR != "" {
		n.Spec.PodCIDR, n.Spec.PodCIDRs = podCIDR, []string{podCIDR}
	}
	if _, err := cs.CoreV1().Nodes().Create(t.Context(), n, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getNode(t *testing.T, cs kubernetes.Interface, name string) *corev1.Node {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitCIDR waits for the Node to get a pod CIDR and checks both fields.
func waitCIDR(t *testing.T, cs kubernetes.Interface, name string) string {
	t.Helper()
	var n *corev1.Node
	eventually(t, name+" to get a pod CIDR", func() bool {
		n = getNode(t, cs, name)
		return n.Spec.PodCIDR != ""
	})
	if len(n.Spec.PodCIDRs) != 1 || n.Spec.PodCIDRs[0] != n.Spec.PodCIDR {
		t.Fatalf("%s: podCIDRs %v, podCIDR %q", name, n.Spec.PodCIDRs, n.Spec.PodCIDR)
	}
	return n.Spec.PodCIDR
}

func deleteNode(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	if err := cs.CoreV1().Nodes().Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// assertDistinct fails if two Nodes share a pod CIDR.
func assertDistinct(t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	l, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, n := range l.Items {
		if n.Spec.PodCIDR == "" {
			continue
		}
		if o, dup := seen[n.Spec.PodCIDR]; dup {
			t.Fatalf("%s and %s share pod CIDR %s", o, n.Name, n.Spec.PodCIDR)
		}
		seen[n.Spec.PodCIDR] = n.Name
	}
}

func TestController_allocatesLowestFreeAndReusesReleased(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	run(t, cs, nodeipam.Config{})
	want := map[string]string{"n1": "10.42.0.0/24", "n2": "10.42.1.0/24", "n3": "10.42.2.0/24"}
	for _, name := range []string{"n1", "n2", "n3"} {
		createNode(t, cs, name, "")
		if got := waitCIDR(t, cs, name); got != want[name] {
			t.Fatalf("%s: got %s, want %s", name, got, want[name])
		}
	}
	assertDistinct(t, cs)

	deleteNode(t, cs, "n2")
	// The release happens when the controller sees the delete; a Node
	// created before that must still get a free block, never n2's twice.
	createNode(t, cs, "n4", "")
	got := waitCIDR(t, cs, "n4")
	if got != "10.42.1.0/24" && got != "10.42.3.0/24" {
		t.Fatalf("n4: got %s, want 10.42.1.0/24 (reused) or 10.42.3.0/24", got)
	}
	if got != "10.42.1.0/24" {
		t.Logf("n4 raced n2's release and got %s", got)
	}
	assertDistinct(t, cs)
}

func TestController_reusesReleasedBlock(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	run(t, cs, nodeipam.Config{})
	for _, name := range []string{"n1", "n2", "n3"} {
		createNode(t, cs, name, "")
		waitCIDR(t, cs, name)
	}
	deleteNode(t, cs, "n2")
	// The watch delivers n2's delete before n4's add, and the one worker
	// takes keys in order, so n2's block is released before n4 is synced.
	createNode(t, cs, "n4", "")
	if got := waitCIDR(t, cs, "n4"); got != "10.42.1.0/24" {
		t.Fatalf("n4: got %s, want n2's released 10.42.1.0/24", got)
	}
	assertDistinct(t, cs)
}

func TestController_restartMarksExisting(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	stop := run(t, cs, nodeipam.Config{})
	createNode(t, cs, "n1", "")
	createNode(t, cs, "n2", "")
	waitCIDR(t, cs, "n1")
	waitCIDR(t, cs, "n2")
	stop()

	// Made while no controller runs: one inside the range (kept and
	// marked), one outside (left alone).
	createNode(t, cs, "preset", "10.42.2.0/24")
	createNode(t, cs, "outside", "192.168.7.0/24")

	run(t, cs, nodeipam.Config{})
	createNode(t, cs, "n3", "")
	if got := waitCIDR(t, cs, "n3"); got != "10.42.3.0/24" {
		t.Fatalf("n3: got %s, want 10.42.3.0/24 (0-2 are held)", got)
	}
	createNode(t, cs, "n4", "")
	if got := waitCIDR(t, cs, "n4"); got != "10.42.4.0/24" {
		t.Fatalf("n4: got %s, want 10.42.4.0/24", got)
	}
	if got := getNode(t, cs, "preset").Spec.PodCIDR; got != "10.42.2.0/24" {
		t.Fatalf("preset node's CIDR changed to %s", got)
	}
	if got := getNode(t, cs, "outside").Spec.PodCIDR; got != "192.168.7.0/24" {
		t.Fatalf("outside node's CIDR changed to %s", got)
	}
	assertDistinct(t, cs)
}

func TestController_rangeExhausted(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	cs := env.Clientset
	run(t, cs, nodeipam.Config{ClusterCIDR: "10.42.0.0/23", NodeMaskSize: 24})
	createNode(t, cs, "n1", "")
	createNode(t, cs, "n2", "")
	a, b := waitCIDR(t, cs, "n1"), waitCIDR(t, cs, "n2")
	if a == b {
		t.Fatalf("n1 and n2 share %s", a)
	}
	createNode(t, cs, "n3", "")
	eventually(t, "a CIDRNotAvailable event for n3", func() bool {
		l, err := cs.CoreV1().Events(metav1.NamespaceDefault).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range l.Items {
			if e.InvolvedObject.Kind == "Node" && e.InvolvedObject.Name == "n3" && e.Reason == "CIDRNotAvailable" {
				return true
			}
		}
		return false
	})
	if got := getNode(t, cs, "n3").Spec.PodCIDR; got != "" {
		t.Fatalf("n3 got %s from a full range", got)
	}
	// Freeing a block hands it to the waiting Node without waiting for
	// the backoff.
	deleteNode(t, cs, "n1")
	if got := waitCIDR(t, cs, "n3"); got != a {
		t.Fatalf("n3: got %s, want n1's released %s", got, a)
	}
	assertDistinct(t, cs)
}

func TestNew_validates(t *testing.T) {
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	for name, cfg := range map[string]nodeipam.Config{
		"no client":        {Informers: f},
		"no informers":     {Client: cs},
		"bad cidr":         {Client: cs, Informers: f, ClusterCIDR: "10.42.0.0"},
		"host bits":        {Client: cs, Informers: f, ClusterCIDR: "10.42.0.1/16"},
		"ipv6":             {Client: cs, Informers: f, ClusterCIDR: "fd00::/48"},
		"mask too small":   {Client: cs, Informers: f, NodeMaskSize: 8},
		"mask too big":     {Client: cs, Informers: f, NodeMaskSize: 33},
		"too many blocks":  {Client: cs, Informers: f, ClusterCIDR: "10.0.0.0/8", NodeMaskSize: 30},
		"negative maskish": {Client: cs, Informers: f, NodeMaskSize: -1},
	} {
		if _, err := nodeipam.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestRun_refusesSecondCall(t *testing.T) {
	cs := fake.NewClientset()
	f := informers.NewSharedInformerFactory(cs, 0)
	c, err := nodeipam.New(nodeipam.Config{Client: cs, Informers: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	f.Start(ctx.Done())
	// Whichever call comes second is refused at once; the other blocks
	// until ctx is done.
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() { done <- c.Run(ctx) }()
	if err := <-done; !errors.Is(err, nodeipam.ErrRunTwice) {
		t.Fatalf("first Run to return: %v, want ErrRunTwice", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.Shutdown()
}
