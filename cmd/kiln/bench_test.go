package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/testenv"
)

// The benchmarks below run the real binary, do one fixed workload per
// invocation and print one line each in the `make bench` format
// (DESIGN.md); run them with -benchtime 1x.

const (
	// benchObjects is how many objects BenchmarkServerRSS creates, half
	// ConfigMaps and half pods.
	benchObjects = 1000
	benchClients = 16
	benchNS      = "default"
)

// BenchmarkServerReady times `kiln server` on a fresh data dir from exec to
// /readyz answering 200, polling every 5 ms.
func BenchmarkServerReady(b *testing.B) {
	bin := testenv.Binary(b)
	srv := benchStart(b, bin)
	if err := srv.waitReady(b.Context(), 5*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	d := srv.readyAt.Sub(srv.started)
	fmt.Printf("BENCH server-ready %.3f s\n", d.Seconds())
}

// BenchmarkServerRSS starts `kiln server`, creates 1,000 objects of about
// 2 KB (ConfigMaps and pods) through the API and reads the process's
// resident set size.
func BenchmarkServerRSS(b *testing.B) {
	bin := testenv.Binary(b)
	srv := benchStart(b, bin)
	ctx := b.Context()
	if err := srv.waitReady(ctx, 5*time.Millisecond); err != nil {
		b.Fatal(err)
	}
	cs := srv.clientset(b)
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range benchClients {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= benchObjects {
					return nil
				}
				var err error
				if i%2 == 0 {
					_, err = cs.CoreV1().ConfigMaps(benchNS).Create(gctx, benchConfigMap(i), metav1.CreateOptions{})
				} else {
					_, err = cs.CoreV1().Pods(benchNS).Create(gctx, benchPod(i), metav1.CreateOptions{})
				}
				if err != nil {
					return fmt.Errorf("object %d: %w", i, err)
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	rss, err := benchProcStatusKiB(srv.cmd.Process.Pid, "VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	hwm, err := benchProcStatusKiB(srv.cmd.Process.Pid, "VmHWM")
	if err != nil {
		b.Fatal(err)
	}
	anon, _ := benchProcStatusKiB(srv.cmd.Process.Pid, "RssAnon")
	file, _ := benchProcStatusKiB(srv.cmd.Process.Pid, "RssFile")
	fmt.Printf("server-rss: after %d objects: VmRSS %d KiB (anonymous %d, file %d), VmHWM %d KiB\n", benchObjects, rss, anon, file, hwm)
	fmt.Printf("BENCH server-rss %.1f MiB\n", float64(rss)/1024)
}

// benchServer is a `kiln server` process started by a benchmark.
type benchServer struct {
	cmd     *exec.Cmd
	dataDir string
	addr    string
	logPath string
	exited  chan error
	started time.Time
	readyAt time.Time
}

// benchStart execs `kiln server` on a fresh data dir and free loopback
// ports, with its output in a log file (shown if the benchmark fails). The
// process is stopped with SIGTERM at cleanup.
func benchStart(b *testing.B, bin string) *benchServer {
	b.Helper()
	dir := b.TempDir()
	s := &benchServer{
		dataDir: filepath.Join(dir, "data"),
		addr:    benchFreeAddr(b),
		logPath: filepath.Join(dir, "kiln.log"),
		exited:  make(chan error, 1),
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		b.Fatal(err)
	}
	// A free port keeps the dashboard's default (127.0.0.1:8080) from
	// clashing.
	// The node (containerd, iptables) is not what this measures.
	s.cmd = exec.Command(bin, "server", "--data-dir", s.dataDir, "--api-listen", s.addr,
		"--dashboard-listen", benchFreeAddr(b), "--disable", "kubelet,proxy")
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.started = time.Now()
	if err := s.cmd.Start(); err != nil {
		logFile.Close()
		b.Fatal(err)
	}
	go func() {
		s.exited <- s.cmd.Wait()
		logFile.Close()
	}()
	b.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-s.exited:
			if err != nil {
				b.Errorf("kiln server: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			b.Error("kiln server did not stop in 30s after SIGTERM")
		}
		if b.Failed() {
			log, _ := os.ReadFile(s.logPath)
			b.Logf("kiln server log:\n%s", log)
		}
	})
	return s
}

// waitReady polls /readyz every interval until it answers 200 and records
// when it did.
func (s *benchServer) waitReady(ctx context.Context, interval time.Duration) error {
	hc := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer hc.CloseIdleConnections()
	url := "https://" + s.addr + "/readyz"
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.readyAt = time.Now()
				return nil
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("kiln server exited before ready: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("kiln server not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// clientset is the admin's clientset from the kubeconfig the server
// writes once ready, with client-go's default (protobuf) bodies and no
// client-side rate limit.
func (s *benchServer) clientset(b *testing.B) kubernetes.Interface {
	b.Helper()
	path := filepath.Join(s.dataDir, "admin.kubeconfig")
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The kubeconfig is written (atomically) just after /readyz turns
		// 200, so it may lag the poll by a moment.
		rc, err := clientcmd.BuildConfigFromFlags("", path)
		if err == nil {
			rc.QPS, rc.Burst = -1, 0
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				b.Fatal(err)
			}
			return cs
		}
		if !errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
			b.Fatalf("admin kubeconfig: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchFreeAddr returns a loopback address with a port that was free a
// moment ago.
func benchFreeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// benchProcStatusKiB reads a "Name:  N kB" field of /proc/<pid>/status.
func benchProcStatusKiB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// benchConfigMap is a ConfigMap of about 2 KB.
func benchConfigMap(i int) *corev1.ConfigMap {
	data := map[string]string{}
	for k := range 4 {
		data[fmt.Sprintf("setting-%d.conf", k)] = strings.Repeat(fmt.Sprintf("key%d=value-%d-%d\n", k, i, k), 29)
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("bench-cm-%04d", i),
			Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop"},
		},
		Data: data,
	}
}

// benchPod is a pod of about 2 KB: labels, annotations and a container
// with env, ports and resources.
func benchPod(i int) *corev1.Pod {
	name := fmt.Sprintf("bench-pod-%04d", i)
	var env []corev1.EnvVar
	for k := range 22 {
		env = append(env, corev1.EnvVar{Name: fmt.Sprintf("APP_SETTING_%d", k), Value: fmt.Sprintf("value-%d-for-%s", k, name)})
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				"app.kubernetes.io/name":       "web",
				"app.kubernetes.io/instance":   "web-" + name,
				"app.kubernetes.io/version":    "1.27.3",
				"app.kubernetes.io/managed-by": "kiln",
			},
			Annotations: map[string]string{
				"gitops.kiln.dev/path":     "apps/web/deployment.yaml",
				"gitops.kiln.dev/revision": "main@sha1:3f1c2a9e8b7d6c5f4e3d2c1b0a99887766554433",
			},
		},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:  "web",
				Image: "registry.example.com/shop/web:1.27.3",
				Args:  []string{"--listen=:8080", "--metrics=:9090", "--log-format=json"},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
				Env:   env,
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
				},
			}},
		},
	}
}
