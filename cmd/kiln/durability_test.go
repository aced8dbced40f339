package main

// RELIABILITY.md promise 1, "an acknowledged write is never lost": the real
// binary is killed with SIGKILL while creates are in flight, restarted on
// the same data dir, and every create that got a 2xx must be there with the
// same content, at a revision that never went down.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kiln.dev/kiln/components/testenv"
)

// durDeadline bounds each wait of the durability test.
const durDeadline = 60 * time.Second

// durProc is one run of `kiln server`.
type durProc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// durStart runs `kiln server` on dataDir and a free loopback port, and
// kills it at cleanup if it is still running.
func durStart(t *testing.T, bin, dataDir string, run int) *durProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// The kubeconfig is written once the server is ready; a stale one from
	// the previous run must not count.
	if err := os.Remove(filepath.Join(dataDir, "admin.kubeconfig")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	logPath := filepath.Join(filepath.Dir(dataDir), fmt.Sprintf("kiln-%d.log", run))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--api-listen", addr, "--log-level", "warn",
		"--dashboard-listen", kilnFreeAddr(t), "--disable", "kubelet,proxy")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	p := &durProc{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		_ = cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(durDeadline):
			t.Errorf("kiln pid %d did not exit after SIGKILL", cmd.Process.Pid)
		}
	})
	return p
}

func (p *durProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// waitReady waits for the kubeconfig and for /readyz, and returns a
// clientset for the admin.
func (p *durProc) waitReady(t *testing.T, dataDir string) kubernetes.Interface {
	t.Helper()
	kubeconfig := filepath.Join(dataDir, "admin.kubeconfig")
	deadline := time.Now().Add(durDeadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var cs kubernetes.Interface
	for {
		select {
		case <-p.exited:
			t.Fatalf("kiln exited before ready: %v\n%s", p.waitErr, p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln not ready in %v\n%s", durDeadline, p.logTail())
		}
		if cs == nil {
			if _, err := os.Stat(kubeconfig); err == nil {
				cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
				if err != nil {
					t.Fatal(err)
				}
				cfg.QPS, cfg.Burst = 1000, 1000
				cfg.Timeout = 10 * time.Second
				if cs, err = kubernetes.NewForConfig(cfg); err != nil {
					t.Fatal(err)
				}
			}
		}
		if cs != nil {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			cancel()
			if err == nil && string(body) == "ok" {
				return cs
			}
		}
		<-tick.C
	}
}

// durData is what create i writes: its index and a payload derived from
// it, so a torn or mixed-up object shows.
func durData(i int) map[string]string {
	return map[string]string{
		"i":       strconv.Itoa(i),
		"payload": strings.Repeat(fmt.Sprintf("%04d-", i), 200),
	}
}

func durEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

type durAck struct {
	uid types.UID
	rv  int64
}

// TestServer_kill9DuringWrites_acknowledgedWritesSurvive: 500 ConfigMap
// creates from 8 clients; after about half are acknowledged the server
// gets SIGKILL with writes in flight. After a restart on the same data
// dir every acknowledged create is there with identical data, UID and
// resourceVersion; creates that failed are either absent or whole; and
// resourceVersions continue above every acknowledged one.
func TestServer_kill9DuringWrites_acknowledgedWritesSurvive(t *testing.T) {
	bin := testenv.Binary(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	p1 := durStart(t, bin, dataDir, 1)
	cs := p1.waitReady(t, dataDir)

	const total, writers, killAfter = 500, 8, 250
	ctx, cancel := context.WithTimeout(t.Context(), durDeadline)
	defer cancel()
	cms := cs.CoreV1().ConfigMaps("default")

	var (
		mu       sync.Mutex
		acked    = map[int]durAck{}
		failed   []int
		ackCount atomic.Int64
		inflight atomic.Int64
		killed   atomic.Bool
		killNow  = make(chan struct{})
		killOnce sync.Once
		stopFeed = make(chan struct{})
		jobs     = make(chan int)
	)
	go func() {
		defer close(jobs)
		for i := range total {
			select {
			case jobs <- i:
			case <-stopFeed:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for i := range jobs {
				cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dur-%03d", i)}, Data: durData(i)}
				inflight.Add(1)
				out, err := cms.Create(ctx, cm, metav1.CreateOptions{})
				inflight.Add(-1)
				if err != nil {
					if !killed.Load() {
						t.Errorf("create %d before the kill: %v", i, err)
					}
					mu.Lock()
					failed = append(failed, i)
					mu.Unlock()
					continue
				}
				rv, err := strconv.ParseInt(out.ResourceVersion, 10, 64)
				if err != nil {
					t.Errorf("create %d: resourceVersion %q: %v", i, out.ResourceVersion, err)
					continue
				}
				mu.Lock()
				acked[i] = durAck{uid: out.UID, rv: rv}
				mu.Unlock()
				if ackCount.Add(1) == killAfter {
					killOnce.Do(func() { close(killNow) })
				}
			}
		})
	}
	select {
	case <-killNow:
	case <-p1.exited:
		t.Fatalf("kiln exited during the writes: %v\n%s", p1.waitErr, p1.logTail())
	case <-ctx.Done():
		t.Fatalf("only %d of %d creates acknowledged in %v", ackCount.Load(), killAfter, durDeadline)
	}
	killed.Store(true)
	inflightAtKill := inflight.Load()
	if err := syscall.Kill(p1.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p1.exited:
	case <-time.After(durDeadline):
		t.Fatal("kiln did not die from SIGKILL")
	}
	close(stopFeed)
	wg.Wait()
	if t.Failed() {
		return
	}
	var maxAck int64
	for _, a := range acked {
		maxAck = max(maxAck, a.rv)
	}
	t.Logf("SIGKILL after %d acknowledged creates, %d in flight; %d acknowledged in all, %d failed, highest acknowledged RV %d",
		killAfter, inflightAtKill, len(acked), len(failed), maxAck)

	p2 := durStart(t, bin, dataDir, 2)
	cs = p2.waitReady(t, dataDir)
	cms = cs.CoreV1().ConfigMaps("default")
	list, err := cms.List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	listRV, err := strconv.ParseInt(list.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if listRV < maxAck {
		t.Errorf("revision went down: list at %d after acknowledging %d", listRV, maxAck)
	}
	found := map[int]corev1.ConfigMap{}
	for _, cm := range list.Items {
		i, err := strconv.Atoi(strings.TrimPrefix(cm.Name, "dur-"))
		if err != nil || !strings.HasPrefix(cm.Name, "dur-") {
			continue
		}
		found[i] = cm
		if !durEqual(cm.Data, durData(i)) {
			t.Errorf("%s after restart holds data of %q, not its own", cm.Name, cm.Data["i"])
		}
	}
	lost := 0
	for i, a := range acked {
		cm, ok := found[i]
		switch {
		case !ok:
			lost++
			t.Errorf("acknowledged create dur-%03d (RV %d) lost", i, a.rv)
		case cm.UID != a.uid || cm.ResourceVersion != strconv.FormatInt(a.rv, 10):
			t.Errorf("dur-%03d after restart: uid %s rv %s, acknowledged uid %s rv %d", i, cm.UID, cm.ResourceVersion, a.uid, a.rv)
		}
	}
	extra := len(found) - (len(acked) - lost)
	t.Logf("after restart: %d/%d acknowledged creates present, %d unacknowledged creates persisted whole, list RV %d", len(acked)-lost, len(acked), extra, listRV)

	// New writes continue above every revision seen before.
	out, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after-restart"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rv, _ := strconv.ParseInt(out.ResourceVersion, 10, 64); rv <= listRV || rv <= maxAck {
		t.Errorf("write after restart at RV %d, not above %d (list) and %d (acknowledged)", rv, listRV, maxAck)
	}
}
