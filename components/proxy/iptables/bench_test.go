package iptables

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/proxy"
	"kiln.dev/kiln/components/proxy/internal/nettest"
	"kiln.dev/kiln/components/testenv"
)

// The benchmark does one fixed workload per invocation and prints lines
// in the `make bench` format (DESIGN.md); run it with -benchtime 1x.

const (
	benchServices = 1000
	benchRounds   = 3
	benchChanges  = 5
	benchNS       = "default"
)

// BenchmarkProxySync measures, in network namespaces of its own, with
// 1,000 Services of 2 endpoints each in the API:
//
//   - proxy-sync: the proxy's full sync (building the rule set from its
//     caches, rendering, the kernel settings, reading existing chains,
//     one iptables-restore and the jump checks) against a bare
//     iptables-restore --noflush of the very text that sync wrote, each
//     into a fresh namespace; the median of 3 rounds.
//   - proxy-sync-one: from the API write of a one-Service change (an
//     endpoint replaced in its EndpointSlice) to the end of the
//     iptables-restore that puts it in place, checked with iptables-save
//     afterwards; the median of 5 changes.
func BenchmarkProxySync(b *testing.B) {
	nettest.Require(b)
	env := testenv.Start(b, testenv.Options{})
	cs := env.Clientset
	ctx := b.Context()
	if err := benchCreate(ctx, cs); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	id := nettest.RunID()

	b.ResetTimer()
	var full, base []time.Duration
	var last *proxy.Proxier
	var lastNS *nettest.NS
	for round := range benchRounds {
		ns := nettest.NewNS(b, fmt.Sprintf("kt%s-bp%d", id, round))
		rules, err := New(Config{NetNS: ns.Path, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		p, err := proxy.New(proxy.Config{Client: cs, Rules: rules, NodeName: "bench", ClusterCIDR: benchCIDR, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(pctx) }()
		stop := sync.OnceFunc(func() { cancel(); <-done })
		b.Cleanup(stop)
		select {
		case <-p.Ready():
		case err := <-done:
			b.Fatalf("proxy: %v", err)
		case <-time.After(2 * time.Minute):
			b.Fatal("no first sync in 2m")
		}
		st := p.Stats()
		if n := strings.Count(string(rules.last), "-j DNAT"); n != 2*benchServices {
			b.Fatalf("full sync wrote %d DNAT rules, want %d", n, 2*benchServices)
		}
		full = append(full, st.LastFull)

		baseNS := nettest.NewNS(b, fmt.Sprintf("kt%s-bb%d", id, round))
		text := rules.last
		start := time.Now()
		if err := inNetns(baseNS.Path, func() error {
			cmd := exec.CommandContext(ctx, "iptables-restore", "-w", "5", "--noflush")
			cmd.Stdin = bytes.NewReader(text)
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		base = append(base, time.Since(start))
		if round < benchRounds-1 {
			stop()
		} else {
			last, lastNS = p, ns
		}
	}
	fullMed, baseMed := median(full), median(base)
	b.Logf("full syncs %v, iptables-restore %v", full, base)

	// One-Service changes with the 1,000 present, on the last round's
	// proxy.
	var one []time.Duration
	for i := range benchChanges {
		name := fmt.Sprintf("bench-%04d", 100+i*150)
		newIP := fmt.Sprintf("10.42.250.%d", 10+i)
		api := cs.DiscoveryV1().EndpointSlices(benchNS)
		cur, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s := benchSlice(name, cur.Endpoints[0].Addresses[0], newIP)
		s.ResourceVersion = cur.ResourceVersion
		before := last.Stats()
		start := time.Now()
		if _, err := api.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		var st proxy.Stats
		for st = last.Stats(); st.PartialSyncs == before.PartialSyncs; st = last.Stats() {
			if time.Now().After(deadline) {
				b.Fatalf("change of %s not synced in 10s", name)
			}
			time.Sleep(time.Millisecond)
		}
		one = append(one, st.LastSyncAt.Sub(start))
		sp := proxy.ServicePort{Service: types.NamespacedName{Namespace: benchNS, Name: name}, Name: "http", Protocol: corev1.ProtocolTCP}
		out, err := lastNS.Exec(ctx, "iptables", "-w", "5", "-t", "nat", "-S", ServiceChain(&sp))
		if err != nil || !strings.Contains(string(out), newIP+":8080") {
			b.Fatalf("%s's chain after the change: %v\n%s", name, err, out)
		}
	}
	b.Logf("one-service changes %v", one)
	b.StopTimer()

	fmt.Printf("BENCH proxy-sync %.1f ms %.2f vs iptables-restore\n", ms(fullMed), float64(fullMed)/float64(baseMed))
	fmt.Printf("BENCH proxy-sync-one %.1f ms\n", ms(median(one)))
}

var benchCIDR = netip.MustParsePrefix("10.42.0.0/16")

// benchCreate makes bench-0000 ... bench-0999, each with a slice of two
// ready endpoints, from 16 goroutines.
func benchCreate(ctx context.Context, cs kubernetes.Interface) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range benchServices {
		g.Go(func() error {
			name := fmt.Sprintf("bench-%04d", i)
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: benchNS},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}}}
			// Concurrent creates can race for the same free ClusterIP in
			// kiln's allocator, which then refuses one; try again.
			var err error
			for range 5 {
				if _, err = cs.CoreV1().Services(benchNS).Create(ctx, svc, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "already allocated") {
					break
				}
			}
			if err != nil {
				return err
			}
			_, err = cs.DiscoveryV1().EndpointSlices(benchNS).Create(ctx, benchSlice(name,
				fmt.Sprintf("10.42.%d.%d", i/100, 2*(i%100)+1), fmt.Sprintf("10.42.%d.%d", i/100, 2*(i%100)+2)), metav1.CreateOptions{})
			return err
		})
	}
	return g.Wait()
}

func benchSlice(name string, ips ...string) *discoveryv1.EndpointSlice {
	portName, port, proto, ready := "http", int32(8080), corev1.ProtocolTCP, true
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: benchNS, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, ip := range ips {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return s
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
