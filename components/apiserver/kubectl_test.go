package apiserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/testenv"
)

// These tests run the real kubectl (the dispatcher on PATH, which runs
// kubectl 1.32 for kiln's /version) against a real kiln API server, as a
// user would. KUBE-API-CONTRACT.md lists the requests each command sends.

// kubectlTimeout bounds one kubectl run, so a hung command fails the test
// instead of hanging it.
const kubectlTimeout = 30 * time.Second

// kubectlNS is the namespace kubectlApp creates.
const kubectlNS = "shop"

func kubectlFixture(name string) string { return filepath.Join("testdata", "kubectl", name) }

// kubectlCommand builds a kubectl command against env as the admin.
// kubectl caches discovery on disk; HOME and --cache-dir live in env's own
// data dir, so no test reads discovery cached from another server.
func kubectlCommand(ctx context.Context, t *testing.T, env *testenv.Env, args ...string) *exec.Cmd {
	t.Helper()
	bin := testenv.Kubectl(t)
	home := filepath.Join(env.DataDir, "kubectl-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	full := append([]string{"--kubeconfig", env.Kubeconfig, "--cache-dir", filepath.Join(home, "cache")}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	return cmd
}

// kubectlRun runs kubectl to completion. The error names the command and
// carries stderr, where kubectl prints "Error from server (...)".
func kubectlRun(t *testing.T, env *testenv.Env, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), kubectlTimeout)
	defer cancel()
	cmd := kubectlCommand(ctx, t, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), errb.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), nil
}

// kubectl runs kubectl and returns its stdout.
func kubectl(t *testing.T, env *testenv.Env, args ...string) (string, error) {
	t.Helper()
	stdout, _, err := kubectlRun(t, env, args...)
	return stdout, err
}

// kubectlMust runs kubectl and fails the test if it fails.
func kubectlMust(t *testing.T, env *testenv.Env, args ...string) string {
	t.Helper()
	out, err := kubectl(t, env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubectlJSONPath returns one field of one object, read back through
// kubectl get -o jsonpath.
func kubectlJSONPath(t *testing.T, env *testenv.Env, object, path string) string {
	t.Helper()
	return kubectlMust(t, env, "get", "-n", kubectlNS, object, "-o", "jsonpath="+path)
}

// kubectlApp starts a server, creates namespace kubectlNS with kubectl and
// applies app.yaml into it.
func kubectlApp(t *testing.T) *testenv.Env {
	t.Helper()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	kubectlMust(t, env, "create", "namespace", kubectlNS)
	kubectlMust(t, env, "apply", "-n", kubectlNS, "-f", kubectlFixture("app.yaml"))
	return env
}

// kubectlLines splits output into its non-empty lines.
func kubectlLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// kubectlTable parses kubectl's column output into one map per row, keyed
// by column header. kubectl aligns every cell under its header, so columns
// are cut at the header's offsets: headers with a space ("NOMINATED NODE")
// and empty cells (api-resources SHORTNAMES) both parse. A blank line
// starts a new table, as in get all.
func kubectlTable(out string) []map[string]string {
	var rows []map[string]string
	var names []string
	var starts []int
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			names, starts = nil, nil
			continue
		}
		if names == nil {
			// A column starts at a non-space after two or more spaces.
			for i := 0; i < len(line); i++ {
				if line[i] != ' ' && (i == 0 || i >= 2 && line[i-1] == ' ' && line[i-2] == ' ') {
					starts = append(starts, i)
				}
			}
			for i, s := range starts {
				end := len(line)
				if i+1 < len(starts) {
					end = starts[i+1]
				}
				names = append(names, strings.TrimSpace(line[s:end]))
			}
			continue
		}
		row := map[string]string{}
		for i, s := range starts {
			end := len(line)
			if i+1 < len(starts) && starts[i+1] < end {
				end = starts[i+1]
			}
			if s < end {
				row[names[i]] = strings.TrimSpace(line[s:end])
			} else {
				row[names[i]] = ""
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// kubectlRow finds the row whose column col is val.
func kubectlRow(t *testing.T, out, col, val string) map[string]string {
	t.Helper()
	for _, row := range kubectlTable(out) {
		if row[col] == val {
			return row
		}
	}
	t.Fatalf("no row with %s=%q in:\n%s", col, val, out)
	return nil
}

// kubectlHeader returns the first header line of out.
func kubectlHeader(out string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(out, "\n"), "\n")
	return line
}

// kubectlPoll calls fn until it returns nil, failing with fn's last error
// once timeout has passed.
func kubectlPoll(t *testing.T, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}

// lockedBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestKubectl_Version_reportsServer132(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})

	out := kubectlMust(t, env, "version")
	if !regexp.MustCompile(`(?m)^Server Version: v1\.32\.`).MatchString(out) {
		t.Errorf("kubectl version: no v1.32 server version in:\n%s", out)
	}
	var v struct {
		ServerVersion struct{ Major, Minor, GitVersion string } `json:"serverVersion"`
	}
	out = kubectlMust(t, env, "version", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version -o json: %v\n%s", err, out)
	}
	if v.ServerVersion.Major != "1" || v.ServerVersion.Minor != "32" || !strings.HasPrefix(v.ServerVersion.GitVersion, "v1.32.") {
		t.Errorf("serverVersion = %+v, want 1.32 (the dispatcher picks kubectl by minor)", v.ServerVersion)
	}
}

func TestKubectl_GetRaw_health(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	for _, path := range []string{"/healthz", "/livez", "/readyz"} {
		if out := kubectlMust(t, env, "get", "--raw", path); out != "ok" {
			t.Errorf("get --raw %s = %q, want ok", path, out)
		}
	}
}

func TestKubectl_CreateNamespace_existsOnce(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})

	if out := kubectlMust(t, env, "create", "namespace", "team-a"); strings.TrimSpace(out) != "namespace/team-a created" {
		t.Errorf("create namespace printed %q", out)
	}
	if got := kubectlMust(t, env, "get", "namespace", "team-a", "-o", "jsonpath={.status.phase}"); got != "Active" {
		t.Errorf("namespace phase = %q, want Active", got)
	}
	_, err := kubectl(t, env, "create", "namespace", "team-a")
	if err == nil || !strings.Contains(err.Error(), `Error from server (AlreadyExists): namespaces "team-a" already exists`) {
		t.Errorf("second create namespace: err = %v, want AlreadyExists", err)
	}
	row := kubectlRow(t, kubectlMust(t, env, "get", "namespaces"), "NAME", "team-a")
	if row["STATUS"] != "Active" {
		t.Errorf("get namespaces row = %v, want STATUS Active", row)
	}
}

func TestKubectl_Apply_multiDocument(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	kubectlMust(t, env, "create", "namespace", kubectlNS)

	apply := func(file string, want ...string) {
		t.Helper()
		out := kubectlMust(t, env, "apply", "-n", kubectlNS, "-f", kubectlFixture(file))
		if got := kubectlLines(out); !slices.Equal(got, want) {
			t.Errorf("apply -f %s printed\n%s\nwant\n%s", file, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	apply("app.yaml",
		"deployment.apps/web created", "service/web created", "configmap/web-config created", "secret/web-secret created")
	// A second apply of the same file changes nothing: kubectl's 3-way
	// patch is empty only if the server stored what it was sent, defaults
	// aside.
	apply("app.yaml",
		"deployment.apps/web unchanged", "service/web unchanged", "configmap/web-config unchanged", "secret/web-secret unchanged")
	apply("app-changed.yaml",
		"deployment.apps/web configured", "service/web unchanged", "configmap/web-config configured", "secret/web-secret unchanged")

	if got := kubectlJSONPath(t, env, "deployment/web", "{.spec.replicas}"); got != "3" {
		t.Errorf("replicas after apply = %s, want 3", got)
	}
	if got := kubectlJSONPath(t, env, "configmap/web-config", "{.data.greeting}"); got != "bye" {
		t.Errorf("greeting after apply = %q, want bye", got)
	}
	// The strategic merge patch kept what the patch did not mention.
	if got := kubectlJSONPath(t, env, "deployment/web", "{.spec.template.spec.containers[0].ports[0].containerPort}"); got != "80" {
		t.Errorf("containerPort after apply = %q, want 80", got)
	}
	last := kubectlJSONPath(t, env, "deployment/web", `{.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}`)
	if !strings.Contains(last, `"replicas":3`) {
		t.Errorf("last-applied-configuration = %q, want the applied replicas 3", last)
	}
}

func TestKubectl_Get_outputFormats(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)
	kubectlMust(t, env, "apply", "-n", kubectlNS, "-f", kubectlFixture("pod.yaml"))

	t.Run("deployment yaml", func(t *testing.T) {
		var d appsv1.Deployment
		out := kubectlMust(t, env, "get", "-n", kubectlNS, "deployment", "web", "-o", "yaml")
		if err := yaml.UnmarshalStrict([]byte(out), &d); err != nil {
			t.Fatalf("-o yaml: %v\n%s", err, out)
		}
		if d.Kind != "Deployment" || d.APIVersion != "apps/v1" || d.Namespace != kubectlNS || d.UID == "" || d.ResourceVersion == "" {
			t.Errorf("-o yaml metadata = %v %v %+v", d.Kind, d.APIVersion, d.ObjectMeta)
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "nginx:1.27" {
			t.Errorf("-o yaml spec = %+v", d.Spec)
		}
	})

	// The ClusterIP is allocated by the server; normal and wide output
	// show the same one as -o json.
	var svc corev1.Service
	out := kubectlMust(t, env, "get", "-n", kubectlNS, "service", "web", "-o", "json")
	if err := json.Unmarshal([]byte(out), &svc); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out)
	}
	ip, err := netip.ParseAddr(svc.Spec.ClusterIP)
	if err != nil || !netip.MustParsePrefix(apiserver.DefaultServiceCIDR).Contains(ip) {
		t.Fatalf("service clusterIP = %q, want an address in %s", svc.Spec.ClusterIP, apiserver.DefaultServiceCIDR)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("-o json ports = %+v, want 80 with protocol defaulted to TCP", svc.Spec.Ports)
	}

	tests := []struct {
		name    string
		args    []string
		rowName string
		want    map[string]string
		// absent are wide-only columns a normal get must not print.
		absent []string
	}{
		{
			name: "service", args: []string{"service"}, rowName: "web",
			want:   map[string]string{"TYPE": "ClusterIP", "CLUSTER-IP": svc.Spec.ClusterIP, "EXTERNAL-IP": "<none>", "PORT(S)": "80/TCP"},
			absent: []string{"SELECTOR"},
		},
		{
			name: "service wide", args: []string{"service", "-o", "wide"}, rowName: "web",
			want: map[string]string{"CLUSTER-IP": svc.Spec.ClusterIP, "SELECTOR": "app=web"},
		},
		{
			name: "deployment", args: []string{"deployments"}, rowName: "web",
			want:   map[string]string{"READY": "0/2", "UP-TO-DATE": "0", "AVAILABLE": "0"},
			absent: []string{"IMAGES"},
		},
		{
			name: "deployment wide", args: []string{"deployments", "-o", "wide"}, rowName: "web",
			want: map[string]string{"READY": "0/2", "CONTAINERS": "web", "IMAGES": "nginx:1.27", "SELECTOR": "app=web"},
		},
		{
			name: "pod", args: []string{"pods"}, rowName: "web-0",
			want:   map[string]string{"READY": "0/1", "STATUS": "Pending", "RESTARTS": "0"},
			absent: []string{"NODE"},
		},
		{
			name: "pod wide", args: []string{"pods", "-o", "wide"}, rowName: "web-0",
			want: map[string]string{"STATUS": "Pending", "NODE": "node-a", "NOMINATED NODE": "<none>"},
		},
		{
			name: "configmap", args: []string{"configmaps"}, rowName: "web-config",
			want: map[string]string{"DATA": "1"},
		},
		{
			name: "secret", args: []string{"secrets"}, rowName: "web-secret",
			want: map[string]string{"TYPE": "Opaque", "DATA": "1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := kubectlMust(t, env, append([]string{"get", "-n", kubectlNS}, tc.args...)...)
			row := kubectlRow(t, out, "NAME", tc.rowName)
			for col, want := range tc.want {
				if row[col] != want {
					t.Errorf("column %s = %q, want %q in:\n%s", col, row[col], want, out)
				}
			}
			for _, col := range tc.absent {
				if _, ok := row[col]; ok {
					t.Errorf("column %s shown without -o wide:\n%s", col, out)
				}
			}
		})
	}

	t.Run("secret jsonpath", func(t *testing.T) {
		b64 := kubectlJSONPath(t, env, "secret/web-secret", "{.data.password}")
		if got, err := base64.StdEncoding.DecodeString(b64); err != nil || string(got) != "s3cret" {
			t.Errorf("secret password = %q (%v), want s3cret", got, err)
		}
	})
	t.Run("name", func(t *testing.T) {
		out := kubectlMust(t, env, "get", "-n", kubectlNS, "configmaps,secrets", "-o", "name")
		if got, want := kubectlLines(out), []string{"configmap/web-config", "secret/web-secret"}; !slices.Equal(got, want) {
			t.Errorf("-o name = %q, want %q", got, want)
		}
	})
}

func TestKubectl_GetWatch_showsLaterChanges(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := kubectlCommand(ctx, t, env, "get", "-n", kubectlNS, "deployments", "-w", "--output-watch-events")
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})

	// waitEvent waits for the watch to print the event; kubectl get -w
	// exits when the stream closes, which fails the wait at once.
	waitEvent := func(event, name, ready string) {
		t.Helper()
		kubectlPoll(t, 15*time.Second, func() error {
			out := stdout.String()
			for _, row := range kubectlTable(out) {
				if row["EVENT"] == event && row["NAME"] == name && row["READY"] == ready {
					return nil
				}
			}
			select {
			case <-exited:
				t.Fatalf("kubectl get -w exited (%v) before printing %s %s %s:\n%s\n%s", waitErr, event, name, ready, out, stderr.String())
			default:
			}
			return fmt.Errorf("watch did not print %s %s %s:\n%s\n%s", event, name, ready, out, stderr.String())
		})
	}
	// The list is printed first, as ADDED; the watch then starts at the
	// list's resourceVersion, so every later change is in it.
	waitEvent("ADDED", "web", "0/2")
	kubectlMust(t, env, "scale", "-n", kubectlNS, "deployment/web", "--replicas=4")
	waitEvent("MODIFIED", "web", "0/4")
	kubectlMust(t, env, "create", "-n", kubectlNS, "deployment", "later", "--image=busybox")
	waitEvent("ADDED", "later", "0/1")
	kubectlMust(t, env, "delete", "-n", kubectlNS, "deployment", "later")
	waitEvent("DELETED", "later", "0/1")

	select {
	case <-exited:
		t.Fatalf("kubectl get -w exited on its own (%v); the watch must stay open", waitErr)
	default:
	}
}

func TestKubectl_LabelAnnotate_setAndRemove(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)

	if out := kubectlMust(t, env, "label", "-n", kubectlNS, "deployment", "web", "tier=frontend"); strings.TrimSpace(out) != "deployment.apps/web labeled" {
		t.Errorf("label printed %q", out)
	}
	if out := kubectlMust(t, env, "annotate", "-n", kubectlNS, "deployment", "web", "owner=team-a"); strings.TrimSpace(out) != "deployment.apps/web annotated" {
		t.Errorf("annotate printed %q", out)
	}
	if got := kubectlJSONPath(t, env, "deployment/web", "{.metadata.labels.tier},{.metadata.labels.app},{.metadata.annotations.owner}"); got != "frontend,web,team-a" {
		t.Errorf("labels and annotations = %q, want frontend,web,team-a", got)
	}
	// A label selector finds it, on the server.
	if got := kubectlMust(t, env, "get", "-n", kubectlNS, "deployments,services", "-l", "tier=frontend", "-o", "name"); strings.TrimSpace(got) != "deployment.apps/web" {
		t.Errorf("get -l tier=frontend = %q, want only the deployment", got)
	}
	if _, err := kubectl(t, env, "label", "-n", kubectlNS, "deployment", "web", "tier=backend"); err == nil || !strings.Contains(err.Error(), "already has a value") {
		t.Errorf("relabel without --overwrite: err = %v", err)
	}
	kubectlMust(t, env, "label", "-n", kubectlNS, "deployment", "web", "tier=backend", "--overwrite")
	kubectlMust(t, env, "annotate", "-n", kubectlNS, "deployment", "web", "owner-")
	if got := kubectlJSONPath(t, env, "deployment/web", "{.metadata.labels.tier},{.metadata.annotations.owner}"); got != "backend," {
		t.Errorf("after overwrite and removal = %q, want backend,", got)
	}
	kubectlMust(t, env, "label", "-n", kubectlNS, "deployment", "web", "tier-")
	if got := kubectlJSONPath(t, env, "deployment/web", "{.metadata.labels}"); got != `{"app":"web"}` {
		t.Errorf("labels after removal = %s, want only app", got)
	}
}

func TestKubectl_Scale_deployment(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)

	// Plain scale is a merge PATCH of deployments/web/scale.
	if out := kubectlMust(t, env, "scale", "-n", kubectlNS, "deployment/web", "--replicas=5"); strings.TrimSpace(out) != "deployment.apps/web scaled" {
		t.Errorf("scale printed %q", out)
	}
	if got := kubectlJSONPath(t, env, "deployment/web", "{.spec.replicas}"); got != "5" {
		t.Errorf("replicas = %s, want 5", got)
	}
	// --current-replicas GETs the scale, checks it and PUTs it (with no
	// Content-Type).
	kubectlMust(t, env, "scale", "-n", kubectlNS, "deployment/web", "--current-replicas=5", "--replicas=3")
	if got := kubectlJSONPath(t, env, "deployment/web", "{.spec.replicas}"); got != "3" {
		t.Errorf("replicas = %s, want 3", got)
	}
	_, err := kubectl(t, env, "scale", "-n", kubectlNS, "deployment/web", "--current-replicas=9", "--replicas=1")
	if err == nil || !strings.Contains(err.Error(), "Expected replicas to be 9, was 3") {
		t.Errorf("scale with a wrong --current-replicas: err = %v", err)
	}
	if got := kubectlJSONPath(t, env, "deployment/web", "{.spec.replicas},{.metadata.generation}"); got != "3,3" {
		t.Errorf("replicas,generation = %s, want 3,3 (two scales, one refused)", got)
	}
}

func TestKubectl_Patch_allTypes(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)

	const image = "{.spec.template.spec.containers[0].image}"
	const port = "{.spec.template.spec.containers[0].ports[0].containerPort}"
	tests := []struct {
		name  string
		args  []string
		path  string
		want  string
		check string // a second jsonpath showing the patch type's semantics
		then  string
	}{
		{
			// Strategic merge (the default) merges containers by name:
			// the port the patch does not mention stays.
			name: "strategic", args: []string{"-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}`},
			path: image, want: "nginx:1.28", check: port, then: "80",
		},
		{
			// A JSON merge patch replaces the list: the port is gone.
			name: "merge", args: []string{"--type=merge", "-p", `{"metadata":{"labels":{"patched":"merge"}},"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.29"}]}}}}`},
			path: image + ",{.metadata.labels.patched}", want: "nginx:1.29,merge", check: port, then: "",
		},
		{
			name: "json", args: []string{"--type=json", "-p", `[{"op":"replace","path":"/spec/replicas","value":4},{"op":"add","path":"/metadata/annotations/patched","value":"json"}]`},
			path: "{.spec.replicas},{.metadata.annotations.patched}", want: "4,json", check: "{.metadata.labels.patched}", then: "merge",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := kubectlMust(t, env, append([]string{"patch", "-n", kubectlNS, "deployment", "web"}, tc.args...)...)
			if strings.TrimSpace(out) != "deployment.apps/web patched" {
				t.Errorf("patch printed %q", out)
			}
			if got := kubectlJSONPath(t, env, "deployment/web", tc.path); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.path, got, tc.want)
			}
			if got := kubectlJSONPath(t, env, "deployment/web", tc.check); got != tc.then {
				t.Errorf("%s = %q, want %q", tc.check, got, tc.then)
			}
		})
	}

	t.Run("json test fails", func(t *testing.T) {
		_, err := kubectl(t, env, "patch", "-n", kubectlNS, "deployment", "web", "--type=json", "-p", `[{"op":"test","path":"/spec/replicas","value":99}]`)
		// A failed test op is the server's 422, and nothing changes.
		if err == nil || !strings.Contains(err.Error(), "The request is invalid") {
			t.Fatalf("a failing JSON patch test op: err = %v, want a 422 Invalid", err)
		}
		if got := kubectlJSONPath(t, env, "deployment/web", "{.spec.replicas}"); got != "4" {
			t.Errorf("replicas after a failed patch = %s, want 4", got)
		}
	})
	t.Run("no change", func(t *testing.T) {
		out := kubectlMust(t, env, "patch", "-n", kubectlNS, "deployment", "web", "--type=merge", "-p", `{"spec":{"replicas":4}}`)
		if strings.TrimSpace(out) != "deployment.apps/web patched (no change)" {
			t.Errorf("a no-op patch printed %q", out)
		}
	})
}

func TestKubectl_Replace_staleResourceVersion(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)

	stale := filepath.Join(t.TempDir(), "stale.yaml")
	if err := os.WriteFile(stale, []byte(kubectlMust(t, env, "get", "-n", kubectlNS, "configmap", "web-config", "-o", "yaml")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Someone else writes; the saved copy's resourceVersion is now stale.
	kubectlMust(t, env, "label", "-n", kubectlNS, "configmap", "web-config", "bumped=yes")
	_, err := kubectl(t, env, "replace", "-f", stale)
	if err == nil || !strings.Contains(err.Error(), "the object has been modified") || !strings.Contains(err.Error(), "Error from server (Conflict)") {
		t.Fatalf("replace with a stale resourceVersion: err = %v, want a Conflict", err)
	}
	if got := kubectlJSONPath(t, env, "configmap/web-config", "{.metadata.labels.bumped}"); got != "yes" {
		t.Errorf("the stale replace overwrote the newer write: bumped = %q", got)
	}

	// A fresh copy replaces.
	fresh := kubectlMust(t, env, "get", "-n", kubectlNS, "configmap", "web-config", "-o", "yaml")
	fresh = strings.Replace(fresh, "greeting: hello", "greeting: replaced", 1)
	path := filepath.Join(t.TempDir(), "fresh.yaml")
	if err := os.WriteFile(path, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := kubectlMust(t, env, "replace", "-f", path); strings.TrimSpace(out) != "configmap/web-config replaced" {
		t.Errorf("replace printed %q", out)
	}
	if got := kubectlJSONPath(t, env, "configmap/web-config", "{.data.greeting}"); got != "replaced" {
		t.Errorf("greeting = %q, want replaced", got)
	}
}

func TestKubectl_Delete_thenNotFound(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)

	if out := kubectlMust(t, env, "delete", "-n", kubectlNS, "deployment", "web"); strings.TrimSpace(out) != `deployment.apps "web" deleted` {
		t.Errorf("delete printed %q", out)
	}
	_, err := kubectl(t, env, "get", "-n", kubectlNS, "deployment", "web")
	if err == nil || !strings.Contains(err.Error(), `Error from server (NotFound): deployments.apps "web" not found`) {
		t.Errorf("get after delete: err = %v, want NotFound", err)
	}

	out := kubectlMust(t, env, "delete", "-n", kubectlNS, "-f", kubectlFixture("app.yaml"), "--ignore-not-found")
	want := []string{`service "web" deleted`, `configmap "web-config" deleted`, `secret "web-secret" deleted`}
	if got := kubectlLines(out); !slices.Equal(got, want) {
		t.Errorf("delete -f printed %q, want %q", got, want)
	}
	stdout, stderr, err := kubectlRun(t, env, "get", "-n", kubectlNS, "services,configmaps,secrets,deployments")
	if err != nil || stdout != "" || !strings.Contains(stderr, "No resources found in "+kubectlNS+" namespace.") {
		t.Errorf("get after delete -f: stdout %q, stderr %q, err %v; want nothing found", stdout, stderr, err)
	}
}

func TestKubectl_APIResources_listsShortNamesAndKiln(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})

	out := kubectlMust(t, env, "api-resources")
	tests := []struct{ name, shortNames, apiVersion, namespaced, kind string }{
		{"pods", "po", "v1", "true", "Pod"},
		{"namespaces", "ns", "v1", "false", "Namespace"},
		{"services", "svc", "v1", "true", "Service"},
		{"deployments", "deploy", "apps/v1", "true", "Deployment"},
		{"replicasets", "rs", "apps/v1", "true", "ReplicaSet"},
		{"sources", "", "gitops.kiln.dev/v1alpha1", "false", "Source"},
	}
	rows := kubectlTable(out)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, row := range rows {
				if row["NAME"] == tc.name && row["APIVERSION"] == tc.apiVersion {
					if row["SHORTNAMES"] != tc.shortNames || row["NAMESPACED"] != tc.namespaced || row["KIND"] != tc.kind {
						t.Errorf("row = %v, want %+v", row, tc)
					}
					return
				}
			}
			t.Errorf("api-resources has no %s in %s:\n%s", tc.name, tc.apiVersion, out)
		})
	}
	// Short names resolve through discovery alone.
	if got := kubectlMust(t, env, "get", "deploy,po,sources", "-A", "-o", "name"); got != "" {
		t.Errorf("get deploy,po,sources on an empty server = %q", got)
	}
	out = kubectlMust(t, env, "api-resources", "--api-group=gitops.kiln.dev", "-o", "name")
	if !slices.Contains(kubectlLines(out), "sources.gitops.kiln.dev") {
		t.Errorf("api-resources --api-group=gitops.kiln.dev = %q, want sources.gitops.kiln.dev", out)
	}
}

func TestKubectl_GetAll_listsServiceAndDeployment(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)
	kubectlMust(t, env, "apply", "-n", kubectlNS, "-f", kubectlFixture("pod.yaml"))

	out := kubectlMust(t, env, "get", "all", "-n", kubectlNS)
	if row := kubectlRow(t, out, "NAME", "service/web"); !strings.HasPrefix(row["CLUSTER-IP"], "10.43.") || row["PORT(S)"] != "80/TCP" {
		t.Errorf("service row = %v", row)
	}
	if row := kubectlRow(t, out, "NAME", "deployment.apps/web"); row["READY"] != "0/2" {
		t.Errorf("deployment row = %v", row)
	}
	if row := kubectlRow(t, out, "NAME", "pod/web-0"); row["STATUS"] != "Pending" {
		t.Errorf("pod row = %v", row)
	}
	// ConfigMaps and Secrets are not in the "all" category.
	if strings.Contains(out, "web-config") || strings.Contains(out, "web-secret") {
		t.Errorf("get all listed a configmap or secret:\n%s", out)
	}
}

func TestKubectl_Describe_showsFields(t *testing.T) {
	t.Parallel()
	env := kubectlApp(t)
	kubectlMust(t, env, "apply", "-n", kubectlNS, "-f", kubectlFixture("pod.yaml"))

	tests := []struct {
		name string
		args []string
		want []string // regexps, one per line of interest
	}{
		{
			name: "deployment", args: []string{"deployment", "web"},
			want: []string{`(?m)^Name:\s+web$`, `(?m)^Namespace:\s+shop$`, `(?m)^Selector:\s+app=web$`, `(?m)^Replicas:\s+2 desired \| 0 updated`,
				`(?m)^StrategyType:\s+RollingUpdate$`, `(?m)^\s+Image:\s+nginx:1\.27$`, `(?m)^\s+Port:\s+80/TCP$`},
		},
		{
			name: "pod", args: []string{"pod", "web-0"},
			want: []string{`(?m)^Name:\s+web-0$`, `(?m)^Node:\s+node-a`, `(?m)^Labels:\s+app=web$`, `(?m)^Status:\s+Pending$`,
				`(?m)^\s+Image:\s+nginx:1\.27$`, `(?m)^QoS Class:\s+BestEffort$`},
		},
		{
			name: "service", args: []string{"service", "web"},
			want: []string{`(?m)^Name:\s+web$`, `(?m)^Selector:\s+app=web$`, `(?m)^IP:\s+10\.43\.`, `(?m)^Port:\s+http\s+80/TCP$`},
		},
		{
			name: "namespace", args: []string{"namespace", kubectlNS},
			want: []string{`(?m)^Name:\s+shop$`, `(?m)^Status:\s+Active$`, `(?m)^No resource quota\.$`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := kubectlMust(t, env, append([]string{"describe", "-n", kubectlNS}, tc.args...)...)
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("describe %s: no match for %s in:\n%s", strings.Join(tc.args, " "), re, out)
				}
			}
		})
	}
}

func TestKubectl_Create_protobufBodies(t *testing.T) {
	t.Parallel()
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	kubectlMust(t, env, "create", "namespace", kubectlNS)

	tests := []struct {
		name  string
		args  []string
		want  string
		check func(t *testing.T)
	}{
		{
			name: "configmap", args: []string{"configmap", "settings", "--from-literal=mode=fast"}, want: "configmap/settings created",
			check: func(t *testing.T) {
				cm, err := env.Clientset.CoreV1().ConfigMaps(kubectlNS).Get(t.Context(), "settings", metav1.GetOptions{})
				if err != nil || cm.Data["mode"] != "fast" {
					t.Errorf("configmap = %v (%v), want data mode=fast", cm, err)
				}
			},
		},
		{
			name: "secret", args: []string{"secret", "generic", "creds", "--from-literal=token=abc"}, want: "secret/creds created",
			check: func(t *testing.T) {
				s, err := env.Clientset.CoreV1().Secrets(kubectlNS).Get(t.Context(), "creds", metav1.GetOptions{})
				if err != nil || string(s.Data["token"]) != "abc" || s.Type != corev1.SecretTypeOpaque {
					t.Errorf("secret = %v (%v), want an Opaque token=abc", s, err)
				}
			},
		},
		{
			name: "deployment", args: []string{"deployment", "api", "--image=busybox:1.36", "--replicas=2"}, want: "deployment.apps/api created",
			check: func(t *testing.T) {
				d, err := env.Clientset.AppsV1().Deployments(kubectlNS).Get(t.Context(), "api", metav1.GetOptions{})
				if err != nil || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "busybox:1.36" || d.Spec.Selector.MatchLabels["app"] != "api" {
					t.Errorf("deployment = %+v (%v), want 2 busybox:1.36 replicas selected by app=api", d, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// -v=8 prints the request headers: the body really is protobuf.
			stdout, stderr, err := kubectlRun(t, env, append([]string{"create", "-n", kubectlNS, "-v=8"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(stdout) != tc.want {
				t.Errorf("create printed %q, want %q", stdout, tc.want)
			}
			if !strings.Contains(stderr, "Content-Type: application/vnd.kubernetes.protobuf") {
				t.Errorf("kubectl create sent no protobuf body; the test no longer covers protobuf decoding")
			}
			tc.check(t)
		})
	}

	_, err := kubectl(t, env, "create", "-n", "nowhere", "configmap", "x", "--from-literal=a=b")
	if err == nil || !strings.Contains(err.Error(), `namespaces "nowhere" not found`) {
		t.Errorf("create in a missing namespace: err = %v, want NotFound", err)
	}
}
