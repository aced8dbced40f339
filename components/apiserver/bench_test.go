package apiserver_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

// The benchmarks below do one fixed workload per invocation and print one
// line each in the `make bench` format (DESIGN.md); run them with
// -benchtime 1x.

const (
	benchPods    = 5000
	benchClients = 16
	benchGets    = 2000
	benchListN   = 10000
	benchNS      = "default"
)

// BenchmarkAPICreate creates 5,000 pods of about 2 KB through client-go
// (protobuf bodies, HTTPS) from 16 goroutines and compares the rate with raw
// etcd Puts of the same pods' JSON to the same embedded etcd, also from 16
// goroutines. Two more workloads show what the API server itself costs: the
// same creates sent to a server on the same stack that only echoes them
// (api-create-transport: client-go, TLS and HTTP/2 alone), and to one that
// also writes each body as it came through the store's create transaction
// before echoing it (api-create-floor: a server that decodes, defaults,
// validates and encodes nothing, i.e. the most any API server on this
// transport and store could do).
func BenchmarkAPICreate(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	cs := benchClientset(b, env)
	nsKey := store.Key("", "namespaces", "", benchNS)
	echo := benchEchoClientset(b, nil)
	var floorN atomic.Int64
	floor := benchEchoClientset(b, func(ctx context.Context, body []byte) error {
		key := fmt.Sprintf("/bench/floor/%05d", floorN.Add(1))
		_, err := env.Store.Create(ctx, key, body, store.WriteOptions{Require: []string{nsKey}})
		return err
	})
	ctx := b.Context()

	pods := make([]*corev1.Pod, benchPods)
	raw := make([][]byte, benchPods)
	for i := range pods {
		pods[i] = benchPod(fmt.Sprintf("bench-%05d", i))
		j, err := json.Marshal(pods[i])
		if err != nil {
			b.Fatal(err)
		}
		raw[i] = j
	}

	// Warm every path (TLS and HTTP/2 connections, gRPC stream, bbolt
	// pages) so no rate pays for setup.
	warm := make([]*corev1.Pod, 200)
	for i := range warm {
		warm[i] = benchPod(fmt.Sprintf("warm-%03d", i))
	}
	if _, err := benchCreatePods(ctx, cs, warm); err != nil {
		b.Fatal(err)
	}
	for _, c := range []kubernetes.Interface{echo, floor} {
		if _, err := benchCreatePods(ctx, c, warm); err != nil {
			b.Fatal(err)
		}
	}
	cli := env.Store.Client()
	if _, err := benchParallel(ctx, len(warm), func(ctx context.Context, i int) error {
		_, err := cli.Put(ctx, fmt.Sprintf("/bench/warm/%d", i), string(raw[i]))
		return err
	}); err != nil {
		b.Fatal(err)
	}

	// The workloads alternate in rounds so that a change in the machine's
	// load (other processes) weighs on all alike.
	b.ResetTimer()
	var apiTime, etcdTime, echoTime, floorTime time.Duration
	const rounds = 10
	per := benchPods / rounds
	for r := range rounds {
		lo := r * per
		d, err := benchParallel(ctx, per, func(ctx context.Context, i int) error {
			_, err := cli.Put(ctx, fmt.Sprintf("/bench/etcd-put/%05d", lo+i), string(raw[lo+i]))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		etcdTime += d
		for _, w := range []struct {
			cs  kubernetes.Interface
			sum *time.Duration
		}{{cs, &apiTime}, {echo, &echoTime}, {floor, &floorTime}} {
			d, err := benchCreatePods(ctx, w.cs, pods[lo:lo+per])
			if err != nil {
				b.Fatal(err)
			}
			*w.sum += d
		}
	}
	b.StopTimer()

	apiRate := benchPods / apiTime.Seconds()
	etcdRate := benchPods / etcdTime.Seconds()
	echoRate := benchPods / echoTime.Seconds()
	floorRate := benchPods / floorTime.Seconds()
	b.Logf("pod JSON %d bytes; api %v (%.0f/s), etcd put %v (%.0f/s), echo %v (%.0f/s), floor %v (%.0f/s)",
		len(raw[0]), apiTime, apiRate, etcdTime, etcdRate, echoTime, echoRate, floorTime, floorRate)
	fmt.Printf("BENCH api-create %.0f pods/s %.2f vs etcd-put\n", apiRate, apiRate/etcdRate)
	fmt.Printf("BENCH api-create-transport %.0f pods/s %.2f vs etcd-put\n", echoRate, echoRate/etcdRate)
	fmt.Printf("BENCH api-create-floor %.0f pods/s %.2f vs etcd-put\n", floorRate, floorRate/etcdRate)
}

// benchEchoClientset is a clientset for a server on the API server's
// stack (net/http, TLS, HTTP/2 offered first) that answers each request
// with its own body: a create's protobuf Pod comes back as the created
// one. With write set, the server first passes the body to it, and a
// failed write answers 500.
func benchEchoClientset(b *testing.B, write func(ctx context.Context, body []byte) error) kubernetes.Interface {
	b.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if write != nil {
			if err := write(r.Context(), body); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	b.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	rc := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: ca}, QPS: -1}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// BenchmarkAPIBind binds 5,000 pending pods to nodes through client-go
// (pods/binding, protobuf bodies) from 16 goroutines, as the scheduler
// does, and compares the rate with creating the same pods. The two
// alternate in rounds, so each round binds the pods the round created.
func BenchmarkAPIBind(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	cs := benchClientset(b, env)
	ctx := b.Context()
	pods := make([]*corev1.Pod, benchPods)
	for i := range pods {
		pods[i] = benchPod(fmt.Sprintf("bind-%05d", i))
	}
	warm := make([]*corev1.Pod, 200)
	for i := range warm {
		warm[i] = benchPod(fmt.Sprintf("warm-%03d", i))
	}
	if _, err := benchCreatePods(ctx, cs, warm); err != nil {
		b.Fatal(err)
	}
	if _, err := benchBindPods(ctx, cs, warm); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	var createTime, bindTime time.Duration
	const rounds = 10
	per := benchPods / rounds
	for r := range rounds {
		round := pods[r*per : (r+1)*per]
		d, err := benchCreatePods(ctx, cs, round)
		if err != nil {
			b.Fatal(err)
		}
		createTime += d
		d, err = benchBindPods(ctx, cs, round)
		if err != nil {
			b.Fatal(err)
		}
		bindTime += d
	}
	b.StopTimer()

	createRate := benchPods / createTime.Seconds()
	bindRate := benchPods / bindTime.Seconds()
	b.Logf("create %v (%.0f/s), bind %v (%.0f/s)", createTime, createRate, bindTime, bindRate)
	fmt.Printf("BENCH api-bind %.0f pods/s %.2f vs pod-create\n", bindRate, bindRate/createRate)
}

// benchBindPods binds pods to nodes named after them from benchClients
// goroutines and returns how long it took.
func benchBindPods(ctx context.Context, cs kubernetes.Interface, pods []*corev1.Pod) (time.Duration, error) {
	return benchParallel(ctx, len(pods), func(ctx context.Context, i int) error {
		return cs.CoreV1().Pods(benchNS).Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pods[i].Name},
			Target:     corev1.ObjectReference{Kind: "Node", Name: fmt.Sprintf("node-%02d", i%50)},
		}, metav1.CreateOptions{})
	})
}

// BenchmarkAPIGetP99 measures the 99th percentile latency of sequential
// GETs of one pod through client-go, as the admin and, alternating with
// those, as a service account with a token from TokenRequest (an
// in-cluster client: RBAC and token checks of its own).
func BenchmarkAPIGetP99(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	cs := benchClientset(b, env)
	ctx := b.Context()
	pod := benchPod("get-target")
	if _, err := cs.CoreV1().Pods(benchNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	sa := benchServiceAccountClientset(b, env, cs)
	get := func(cs kubernetes.Interface) (time.Duration, error) {
		start := time.Now()
		_, err := cs.CoreV1().Pods(benchNS).Get(ctx, pod.Name, metav1.GetOptions{})
		return time.Since(start), err
	}
	for range 200 {
		for _, c := range []kubernetes.Interface{cs, sa} {
			if _, err := get(c); err != nil {
				b.Fatal(err)
			}
		}
	}

	b.ResetTimer()
	lat := make([]time.Duration, benchGets)
	saLat := make([]time.Duration, benchGets)
	for i := range lat {
		d, err := get(cs)
		if err != nil {
			b.Fatal(err)
		}
		lat[i] = d
		if d, err = get(sa); err != nil {
			b.Fatal(err)
		}
		saLat[i] = d
	}
	b.StopTimer()

	for _, l := range [][]time.Duration{lat, saLat} {
		slices.Sort(l)
	}
	p99, saP99 := benchPercentile(lat, 0.99), benchPercentile(saLat, 0.99)
	b.Logf("%d gets: admin p50 %v, p99 %v, max %v; service account p50 %v, p99 %v, max %v", len(lat),
		benchPercentile(lat, 0.50), p99, lat[len(lat)-1], benchPercentile(saLat, 0.50), saP99, saLat[len(saLat)-1])
	fmt.Printf("BENCH api-get-p99 %.2f ms\n", benchMillis(p99))
	fmt.Printf("BENCH api-get-p99-serviceaccount %.2f ms\n", benchMillis(saP99))
}

// benchServiceAccountClientset is a clientset for the service account
// bench-reader, allowed to read pods in benchNS, with a token from
// TokenRequest.
func benchServiceAccountClientset(b *testing.B, env *testenv.Env, admin kubernetes.Interface) kubernetes.Interface {
	b.Helper()
	ctx := b.Context()
	if _, err := admin.CoreV1().ServiceAccounts(benchNS).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-reader"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(benchNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "bench-reader", Namespace: benchNS}},
	}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	tr, err := admin.CoreV1().ServiceAccounts(benchNS).CreateToken(ctx, "bench-reader", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(env.RESTConfig)
	rc.BearerToken = tr.Status.Token
	return benchClientsetFor(b, rc)
}

// BenchmarkAPIList10k creates 10,000 pods through the API (16 creators)
// and times three full, unpaged LISTs of them through client-go; it reports
// the median.
func BenchmarkAPIList10k(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	cs := benchClientset(b, env)
	ctx := b.Context()
	pods := make([]*corev1.Pod, benchListN)
	for i := range pods {
		pods[i] = benchPod(fmt.Sprintf("list-%05d", i))
	}
	if _, err := benchCreatePods(ctx, cs, pods); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	times := make([]time.Duration, 3)
	for i := range times {
		start := time.Now()
		list, err := cs.CoreV1().Pods(benchNS).List(ctx, metav1.ListOptions{})
		times[i] = time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != benchListN {
			b.Fatalf("list returned %d pods, want %d", len(list.Items), benchListN)
		}
	}
	b.StopTimer()

	b.Logf("lists of %d pods: %v, %v, %v", benchListN, times[0], times[1], times[2])
	slices.Sort(times)
	fmt.Printf("BENCH api-list-10k %.0f ms\n", benchMillis(times[1]))
}

// benchClientset is the admin's clientset with client-go's default
// (protobuf) bodies and no client-side rate limit.
func benchClientset(b *testing.B, env *testenv.Env) kubernetes.Interface {
	b.Helper()
	return benchClientsetFor(b, rest.CopyConfig(env.RESTConfig))
}

// benchClientsetFor is a clientset for rc (which it changes) with
// client-go's default bodies and no client-side rate limit.
func benchClientsetFor(b *testing.B, rc *rest.Config) kubernetes.Interface {
	b.Helper()
	rc.ContentType = ""
	rc.QPS, rc.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		b.Fatal(err)
	}
	return cs
}

// benchCreatePods creates pods from benchClients goroutines and returns
// how long it took.
func benchCreatePods(ctx context.Context, cs kubernetes.Interface, pods []*corev1.Pod) (time.Duration, error) {
	return benchParallel(ctx, len(pods), func(ctx context.Context, i int) error {
		_, err := cs.CoreV1().Pods(benchNS).Create(ctx, pods[i], metav1.CreateOptions{})
		return err
	})
}

// benchParallel runs fn for 0..n-1 from benchClients goroutines, which
// take the next index as they go, and returns the wall time.
func benchParallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) (time.Duration, error) {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range benchClients {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return nil
				}
				if err := fn(gctx, i); err != nil {
					return fmt.Errorf("item %d: %w", i, err)
				}
			}
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// benchPod is a realistic pod of about 2 KB of JSON: labels, annotations,
// an app container with env, ports, resources, probes and mounts, and a
// sidecar.
func benchPod(name string) *corev1.Pod {
	env := make([]corev1.EnvVar, 0, 12)
	for i := range 9 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("APP_SETTING_%d", i), Value: fmt.Sprintf("value-%d-for-%s", i, name)})
	}
	env = append(env,
		corev1.EnvVar{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		corev1.EnvVar{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
	)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: benchNS,
			Labels: map[string]string{
				"app.kubernetes.io/name":       "web",
				"app.kubernetes.io/instance":   "web-" + name,
				"app.kubernetes.io/version":    "1.27.3",
				"app.kubernetes.io/component":  "frontend",
				"app.kubernetes.io/part-of":    "shop",
				"app.kubernetes.io/managed-by": "kiln",
				"pod-template-hash":            "5d9c7b8f6d",
			},
			Annotations: map[string]string{
				"gitops.kiln.dev/path":                    "apps/web/deployment.yaml",
				"gitops.kiln.dev/revision":                "main@sha1:3f1c2a9e8b7d6c5f4e3d2c1b0a99887766554433",
				"prometheus.io/scrape":                    "true",
				"prometheus.io/port":                      "9090",
				"kubectl.kubernetes.io/default-container": "web",
			},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{
					Name:  "web",
					Image: "registry.example.com/shop/web:1.27.3",
					Args:  []string{"--listen=:8080", "--metrics=:9090", "--log-format=json"},
					Ports: []corev1.ContainerPort{
						{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
						{Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP},
					},
					Env: env,
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
					},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
						PeriodSeconds: 5,
					},
					VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/web", ReadOnly: true}},
				},
				{
					Name:  "log-shipper",
					Image: "registry.example.com/infra/log-shipper:0.9.1",
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					},
				},
			},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}},
			}}},
		},
	}
}

// benchPercentile returns the q-quantile of sorted durations (nearest rank).
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
