package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/testenv"
)

// BenchmarkNodeAuthzStatus patches the status of 200 pods bound to node a,
// 4,000 times from 16 goroutines, once with node a's client certificate
// (the node authorizer decides each) and once with the admin token (no
// decision), and prints the wall time per patch and the ratio: what the node
// authorizer adds to a kubelet's commonest write.
func BenchmarkNodeAuthzStatus(b *testing.B) {
	const pods, patches = 200, 4000
	env := testenv.Start(b, testenv.Options{})
	ctx := b.Context()
	master := benchClientset(b, env)
	certPEM, keyPEM, err := env.CA.IssueClient(apiserver.NodeUserPrefix+"a", []string{apiserver.GroupNodes}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	node, err := kubernetes.NewForConfig(&rest.Config{Host: env.URL, QPS: -1,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.CAPEM, CertData: certPEM, KeyData: keyPEM}})
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, pods)
	for i := range names {
		p := benchPod(fmt.Sprintf("status-%03d", i))
		p.Spec.NodeName = "a"
		if _, err := master.CoreV1().Pods(benchNS).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		names[i] = p.Name
	}
	patch := func(cs kubernetes.Interface, n int) (time.Duration, error) {
		return benchParallel(ctx, n, func(ctx context.Context, i int) error {
			body := fmt.Appendf(nil, `{"status":{"message":"patch %d"}}`, i)
			_, err := cs.CoreV1().Pods(benchNS).Patch(ctx, names[i%pods], types.StrategicMergePatchType, body, metav1.PatchOptions{}, "status")
			return err
		})
	}
	// Warm both clients' connections and the node authorizer's graph.
	for _, cs := range []kubernetes.Interface{node, master} {
		if _, err := patch(cs, pods); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var nodeTime, masterTime time.Duration
	const rounds = 8
	for range rounds {
		d, err := patch(node, patches/rounds)
		if err != nil {
			b.Fatal(err)
		}
		nodeTime += d
		if d, err = patch(master, patches/rounds); err != nil {
			b.Fatal(err)
		}
		masterTime += d
	}
	b.StopTimer()
	perNode := float64(nodeTime.Nanoseconds()) / patches
	perMaster := float64(masterTime.Nanoseconds()) / patches
	fmt.Printf("BENCH node-authz-status %.0f ns/op %.2f vs master\n", perNode, perNode/perMaster)
}
