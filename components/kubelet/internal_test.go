package kubelet

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/kubelet/runtime"
)

func TestParseCRILine(t *testing.T) {
	ts := "2024-05-01T10:00:00.123456789Z"
	cases := []struct {
		name, line string
		want       criLine
		bad        bool
	}{
		{"full", ts + " stdout F hello world\n", criLine{stream: "stdout", content: []byte("hello world")}, false},
		{"partial", ts + " stderr P part", criLine{stream: "stderr", partial: true, content: []byte("part")}, false},
		{"tags", ts + " stdout F:x more", criLine{stream: "stdout", content: []byte("more")}, false},
		{"empty content", ts + " stdout F", criLine{stream: "stdout"}, false},
		{"spaces kept", ts + " stdout F  two  spaces ", criLine{stream: "stdout", content: []byte(" two  spaces ")}, false},
		{"bad time", "yesterday stdout F x", criLine{}, true},
		{"bad stream", ts + " stdin F x", criLine{}, true},
		{"bad tag", ts + " stdout X x", criLine{}, true},
		{"no fields", "garbage", criLine{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCRILine([]byte(tc.line))
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, bad = %v", err, tc.bad)
			}
			if tc.bad {
				return
			}
			if got.stream != tc.want.stream || got.partial != tc.want.partial || !bytes.Equal(got.content, tc.want.content) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if got.ts.Format(time.RFC3339Nano) != ts {
				t.Errorf("ts %v", got.ts)
			}
		})
	}
}

func FuzzParseCRILine(f *testing.F) {
	f.Add([]byte("2024-05-01T10:00:00.123456789Z stdout F hello\n"))
	f.Add([]byte("2024-05-01T10:00:00Z stderr P "))
	f.Add([]byte(" "))
	f.Fuzz(func(t *testing.T, line []byte) {
		l, err := parseCRILine(line)
		if err == nil && l.stream != "stdout" && l.stream != "stderr" {
			t.Fatalf("stream %q accepted", l.stream)
		}
		var b bytes.Buffer
		_ = emit(&logWriter{w: &b, timestamps: true, limit: 10}, line, time.Time{})
		if b.Len() > 10 {
			t.Fatalf("wrote %d bytes past limitBytes 10", b.Len())
		}
	})
}

func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "0.log")
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeLog(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	line := func(d time.Duration, stream, tag, text string) string {
		return t0.Add(d).Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + text
	}
	path := writeLines(t,
		line(0, "stdout", "F", "one"),
		line(time.Second, "stderr", "P", "two-a "),
		line(2*time.Second, "stderr", "F", "two-b"),
		line(3*time.Second, "stdout", "F", "three"),
		"not a cri line",
	)
	cases := []struct {
		name string
		lr   logRequest
		want string
	}{
		{"all", logRequest{tailLines: -1}, "one\ntwo-a two-b\nthree\nnot a cri line\n"},
		{"tail 2", logRequest{tailLines: 2}, "three\nnot a cri line\n"},
		{"tail 0", logRequest{tailLines: 0}, ""},
		{"tail more than there is", logRequest{tailLines: 99}, "one\ntwo-a two-b\nthree\nnot a cri line\n"},
		{"limit", logRequest{tailLines: -1, limitBytes: 6}, "one\ntw"},
		{"since", logRequest{tailLines: -1, since: t0.Add(2500 * time.Millisecond)}, "three\nnot a cri line\n"},
		{"timestamps", logRequest{tailLines: 4, timestamps: true},
			t0.Add(time.Second).Format(time.RFC3339Nano) + " two-a two-b\n" + t0.Add(3*time.Second).Format(time.RFC3339Nano) + " three\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if err := serveLog(t.Context(), rec, path, tc.lr, nil); err != nil {
				t.Fatal(err)
			}
			got := rec.Body.String()
			if tc.name == "timestamps" {
				got = strings.TrimSuffix(got, strings.SplitAfter(got, "\n")[2]) // the non-CRI line has a time of now
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestServeLog_followsRotation: kubectl logs -f goes on into the new
// file when the runtime rotates the log, without losing what was written
// to the old one just before it was moved aside.
func TestServeLog_followsRotation(t *testing.T) {
	cri := func(text string) string {
		return time.Now().UTC().Format(time.RFC3339Nano) + " stdout F " + text + "\n"
	}
	appendTo := func(path string, texts ...string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, text := range texts {
			if _, err := f.WriteString(cri(text)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// follow runs serveLog -f on a log that rotate changes, and returns
	// what it served once the container stopped. atStop, if set, runs
	// inside the first check that finds the container stopped.
	follow := func(t *testing.T, rotate func(path string, stop func()), atStop func(path string)) string {
		path := filepath.Join(t.TempDir(), "0.log")
		appendTo(path, "a1", "a2")
		var stopped atomic.Bool
		var once sync.Once
		running := func(context.Context) bool {
			if !stopped.Load() {
				return true
			}
			if atStop != nil {
				once.Do(func() { atStop(path) })
			}
			return false
		}
		rec := httptest.NewRecorder()
		done := make(chan error, 1)
		go func() {
			done <- serveLog(t.Context(), rec, path, logRequest{tailLines: -1, follow: true}, running)
		}()
		time.Sleep(2 * followPoll) // the reader waits at the end of a2
		rotate(path, func() { stopped.Store(true) })
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("serveLog did not return after the container stopped")
		}
		return rec.Body.String()
	}
	moveAside := func(path string) error { return os.Rename(path, path+".20240501-100000") }
	t.Run("WhileRunning", func(t *testing.T) {
		got := follow(t, func(path string, stop func()) {
			appendTo(path, "a3") // the last line before the rotation
			if err := moveAside(path); err != nil {
				t.Fatal(err)
			}
			appendTo(path, "b1", "b2")
			time.Sleep(2 * followPoll)
			appendTo(path, "b3")
			stop()
		}, nil)
		if want := "a1\na2\na3\nb1\nb2\nb3\n"; got != want {
			t.Fatalf("followed %q, want %q", got, want)
		}
	})
	t.Run("AsItStops", func(t *testing.T) {
		// The log rotates between the reader's look for a rotation and
		// its look at the container, which finds it stopped: the last
		// line is in the new file.
		got := follow(t, func(_ string, stop func()) { stop() }, func(path string) {
			err := moveAside(path)
			if err == nil {
				err = os.WriteFile(path, []byte(cri("b1")), 0o600)
			}
			if err != nil {
				t.Error(err)
			}
		})
		if want := "a1\na2\nb1\n"; got != want {
			t.Fatalf("followed %q, want %q", got, want)
		}
	})
}

func TestExpand(t *testing.T) {
	vars := mapping(map[string]string{"A": "a", "B": "b", "EMPTY": ""})
	cases := map[string]string{
		"$(A)":        "a",
		"x$(A)y$(B)z": "xaybz",
		"$$(A)":       "$(A)",
		"$$$(A)":      "$a",
		"$(UNKNOWN)":  "$(UNKNOWN)",
		"$(EMPTY)!":   "!",
		"$(A":         "$(A",
		"$":           "$",
		"$A":          "$A",
		"no vars":     "no vars",
		"$($(A))":     "$($(A))",
		"end$":        "end$",
		"$(A)$(B)$$":  "ab$",
		"100$ and $(": "100$ and $(",
	}
	for in, want := range cases {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	files := map[string]file{"a": {data: []byte("1"), mode: 0o644}, "sub/b": {data: []byte("2"), mode: 0o400}}
	if err := writeAtomic(dir, files); err != nil {
		t.Fatal(err)
	}
	first, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "b")); err != nil || string(b) != "2" {
		t.Fatalf("sub/b = %q, %v", b, err)
	}
	// Unchanged contents are not rewritten.
	if err := writeAtomic(dir, files); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.Readlink(filepath.Join(dir, dataLink)); again != first {
		t.Errorf("rewritten without a change: %s -> %s", first, again)
	}
	// A change swaps ..data and drops what is gone.
	if err := writeAtomic(dir, map[string]file{"a": {data: []byte("new"), mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != "new" {
		t.Errorf("a = %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Errorf("sub still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, first)); !os.IsNotExist(err) {
		t.Errorf("old contents %s still there", first)
	}
	for _, bad := range []string{"../x", "/abs", "..data"} {
		if err := writeAtomic(dir, map[string]file{bad: {data: nil, mode: 0o644}}); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
}

func TestResolvConfFor(t *testing.T) {
	host := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(host, []byte("nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{cfg: Config{ClusterDNS: "10.43.0.10", ClusterDomain: "cluster.local", ResolvConf: host}}
	pod := func(policy corev1.DNSPolicy, hostNet bool, dc *corev1.PodDNSConfig) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metavOf("ns1"), Spec: corev1.PodSpec{DNSPolicy: policy, HostNetwork: hostNet, DNSConfig: dc}}
	}
	cases := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"cluster first", pod(corev1.DNSClusterFirst, false, nil),
			"search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n"},
		{"cluster first on the host network is Default", pod(corev1.DNSClusterFirst, true, nil),
			"search corp.example\nnameserver 192.0.2.53\noptions edns0\n"},
		{"cluster first with host net", pod(corev1.DNSClusterFirstWithHostNet, true, nil),
			"search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n"},
		{"default", pod(corev1.DNSDefault, false, nil), "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"},
		{"none with config", pod(corev1.DNSNone, false, &corev1.PodDNSConfig{Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.example"},
			Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: new("2")}, {Name: "rotate"}}}),
			"search a.example\nnameserver 1.1.1.1\noptions ndots:2 rotate\n"},
		{"cluster first with options", pod(corev1.DNSClusterFirst, false, &corev1.PodDNSConfig{Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: new("1")}}}),
			"search ns1.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k.resolvConfFor(tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func metavOf(ns string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: "p"} }

func TestPodPhase(t *testing.T) {
	running := corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	exited := func(code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
	}
	backoff := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}
	creating := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	pod := func(policy corev1.RestartPolicy, inits int) *corev1.Pod {
		p := &corev1.Pod{Spec: corev1.PodSpec{RestartPolicy: policy}}
		for range inits {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{})
		}
		return p
	}
	cases := []struct {
		name     string
		pod      *corev1.Pod
		inits    []corev1.ContainerStatus
		apps     []corev1.ContainerStatus
		terminal bool
		want     corev1.PodPhase
	}{
		{"creating", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{creating}, false, corev1.PodPending},
		{"running", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{running, exited(0)}, false, corev1.PodRunning},
		{"crash loop", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{backoff}, false, corev1.PodRunning},
		{"init running", pod(corev1.RestartPolicyAlways, 1), []corev1.ContainerStatus{running}, []corev1.ContainerStatus{creating}, false, corev1.PodPending},
		{"init failed never", pod(corev1.RestartPolicyNever, 1), []corev1.ContainerStatus{exited(1)}, []corev1.ContainerStatus{creating}, false, corev1.PodFailed},
		{"all succeeded never", pod(corev1.RestartPolicyNever, 0), nil, []corev1.ContainerStatus{exited(0), exited(0)}, false, corev1.PodSucceeded},
		{"one failed never", pod(corev1.RestartPolicyNever, 0), nil, []corev1.ContainerStatus{exited(0), exited(2)}, false, corev1.PodFailed},
		{"failed on failure", pod(corev1.RestartPolicyOnFailure, 0), nil, []corev1.ContainerStatus{exited(2)}, false, corev1.PodRunning},
		{"always all exited", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{exited(0)}, false, corev1.PodRunning},
		{"deleted, exited 0", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{exited(0)}, true, corev1.PodSucceeded},
		{"deleted, killed", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{exited(137)}, true, corev1.PodFailed},
		{"deleted before start", pod(corev1.RestartPolicyAlways, 0), nil, []corev1.ContainerStatus{creating}, true, corev1.PodFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := podPhase(tc.pod, tc.inits, tc.apps, tc.terminal); got != tc.want {
				t.Errorf("phase %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRegistryCredentials(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("ada:pw:with:colons"))
	for _, tc := range []struct {
		name   string
		secret *corev1.Secret
		want   []runtime.RegistryCredential
		err    bool
	}{
		{"dockerconfigjson with auth, Docker Hub's key", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"` + auth + `"}}}`)}},
			[]runtime.RegistryCredential{{Host: "docker.io", Username: "ada", Password: "pw:with:colons"}}, false},
		{"dockerconfigjson with username and password", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com:5000":{"username":"u","password":"p"}}}`)}},
			[]runtime.RegistryCredential{{Host: "registry.example.com:5000", Username: "u", Password: "p"}}, false},
		{"legacy dockercfg", &corev1.Secret{Type: corev1.SecretTypeDockercfg,
			Data: map[string][]byte{corev1.DockerConfigKey: []byte(`{"https://ghcr.io":{"username":"u","password":"p"}}`)}},
			[]runtime.RegistryCredential{{Host: "ghcr.io", Username: "u", Password: "p"}}, false},
		{"opaque secret", &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"x": []byte("y")}}, nil, true},
		{"broken json", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{`)}}, nil, true},
	} {
		got, err := registryCredentials(tc.secret)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v, %v; want %+v (error %v)", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestHandlePod_statusEcho: the informer's return of the kubelet's own
// status write updates the worker's pod without a sync; any other change
// (another writer's, or a later one) wakes the worker.
func TestHandlePod_statusEcho(t *testing.T) {
	k := &Kubelet{cfg: Config{NodeName: "n1"}, workers: map[types.UID]*podWorker{}}
	pod := func(rv string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u1", ResourceVersion: rv},
			Spec:       corev1.PodSpec{NodeName: "n1"},
		}
	}
	w := newPodWorker(pod("4"))
	k.workers["u1"] = w
	w.echoRV = "5"

	k.handlePod(pod("5"))
	if len(w.wake) != 0 {
		t.Fatal("the echo of the kubelet's own status write woke the worker")
	}
	if got, _ := w.snapshot(); got.ResourceVersion != "5" {
		t.Fatalf("worker holds pod at %s, want the echo's 5", got.ResourceVersion)
	}
	k.handlePod(pod("6"))
	if len(w.wake) != 1 {
		t.Fatal("a change after the kubelet's write did not wake the worker")
	}
}

// TestRemoveLog: an old attempt's log goes with the files rotated out of
// it, and no other attempt's.
func TestRemoveLog(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"0.log", "0.log.20240501-100000.000000001", "0.log.20240501-100001.000000002", "1.log", "1.log.20240501-100002.000000003"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeLog(filepath.Join(dir, "0.log"))
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range left {
		left[i] = filepath.Base(left[i])
	}
	if want := []string{"1.log", "1.log.20240501-100002.000000003"}; !slices.Equal(left, want) {
		t.Fatalf("left %q, want %q", left, want)
	}
}
