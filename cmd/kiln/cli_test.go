package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/dir"
)

// The client commands run in-process against a real control plane and a
// real reconciler, as `kiln status` and `kiln diff` run against a server;
// TestCLI_binaryExitCodes runs the built binary to check what main makes
// of their answers.

const (
	cliNamespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n"
	cliDeploy    = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25"}]
`
	cliConfigMap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\ndata: {greeting: hello}\n"
	// The Secret's values are canaries: no output may ever contain them,
	// in clear or base64.
	cliSecretOld = "canary-old-7f3a9c"
	cliSecretNew = "canary-new-b21e4d"
)

func cliSecret(password string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\ntype: Opaque\n" +
		"data:\n  password: " + base64.StdEncoding.EncodeToString([]byte(password)) + "\n" +
		"stringData:\n  token: " + password + "-token\n"
}

func cliFiles() map[string]string {
	return map[string]string{
		"ns.yaml":         cliNamespace,
		"app/deploy.yaml": cliDeploy,
		"app/cm.yaml":     cliConfigMap,
		"app/secret.yaml": cliSecret(cliSecretOld),
		".git/config":     "[core]\n",
	}
}

// cliEnv is a control plane whose Source "demo" synced cliFiles from a
// directory.
type cliEnv struct {
	env *testenv.Env
	dyn dynamic.Interface
	src reconcile.Source
}

func startCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	d := t.TempDir()
	cliWrite(t, d, cliFiles())
	fetcher, err := dir.New(dir.Config{Name: "demo", Path: d})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: env.RESTConfig, Sources: []reconcile.SourceConfig{{
		Name: "demo", Spec: reconcile.SourceSpec{Kind: "dir", Path: d, Namespace: "default", Prune: true}, Fetcher: fetcher}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reconciler: %v", err)
		}
	})
	e := &cliEnv{env: env, dyn: dynamic.NewForConfigOrDie(env.RESTConfig)}
	cliEventually(t, "first sync", func() string {
		e.src = e.source(t, "demo")
		if !meta.IsStatusConditionTrue(e.src.Status.Conditions, reconcile.ConditionReady) {
			return "not ready"
		}
		return ""
	})
	return e
}

func (e *cliEnv) source(t *testing.T, name string) reconcile.Source {
	t.Helper()
	var src reconcile.Source
	u, err := e.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return src
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	return src
}

// createSource writes a Source with the given status, as a reconciler
// would have left it.
func createSource(t *testing.T, dyn dynamic.Interface, name string, st reconcile.SourceStatus) {
	t.Helper()
	src := reconcile.Source{Spec: reconcile.SourceSpec{Kind: "git", URL: "https://example.com/repo.git", Prune: true}, Status: st}
	src.SetGroupVersionKind(reconcile.SourceGVK)
	src.Name = name
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&src)
	if err != nil {
		t.Fatal(err)
	}
	ri := dyn.Resource(reconcile.SourceGVR)
	created, err := ri.Create(t.Context(), &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Object["status"] = obj["status"]
	if _, err := ri.UpdateStatus(t.Context(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func cliWrite(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func cliEventually(t *testing.T, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = fn(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// runCLI runs a command in-process and returns its output and exit code.
func runCLI(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err := cmd.ExecuteContext(t.Context())
	t.Logf("kiln %s %s: exit %d\nstdout:\n%s\nstderr:\n%s", cmd.Name(), strings.Join(args, " "), exitCode(err), out.String(), errb.String())
	return out.String(), errb.String(), exitCode(err)
}

// tableRow returns the fields of the table row of source name.
func tableRow(t *testing.T, table, name string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME ") {
		t.Fatalf("no table header:\n%s", table)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return f
		}
	}
	t.Fatalf("no row for %s:\n%s", name, table)
	return nil
}

func TestStatus_ready(t *testing.T) {
	e := startCLIEnv(t)
	out, _, code := runCLI(t, statusCmd(), "--kubeconfig", e.env.Kubeconfig)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	row := tableRow(t, out, "demo")
	rev := e.src.Status.LastAppliedRevision
	if want := []string{"demo", "dir", shortRevision(rev), "Ready"}; !equalPrefix(row, want) {
		t.Fatalf("row %q, want it to start with %q", row, want)
	}
	if !strings.HasPrefix(rev, "sha256:") || len(shortRevision(rev)) != len("sha256:")+12 {
		t.Fatalf("revision %q shortened to %q", rev, shortRevision(rev))
	}
	switch health := row[4]; health {
	case "-", "Healthy", "Progressing", "Degraded", "Unknown":
	default:
		t.Fatalf("health %q", health)
	}
	if !strings.Contains(out, " ago") {
		t.Fatalf("no age of the last sync:\n%s", out)
	}

	// --data-dir finds the admin kubeconfig; KUBECONFIG is the default.
	if _, _, code := runCLI(t, statusCmd(), "--data-dir", e.env.DataDir); code != 0 {
		t.Fatalf("--data-dir: exit %d", code)
	}
	t.Setenv("KUBECONFIG", e.env.Kubeconfig)
	if _, _, code := runCLI(t, statusCmd()); code != 0 {
		t.Fatalf("$KUBECONFIG: exit %d", code)
	}
}

func equalPrefix(got, want []string) bool {
	return len(got) >= len(want) && slices.Equal(got[:len(want)], want)
}

func TestStatus_failed(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	dyn := dynamic.NewForConfigOrDie(env.RESTConfig)
	now := metav1.Now()
	longMsg := "app/broken.yaml: Service shop/bad: spec.ports[0].port: Invalid value: must be between 1 and 65535, inclusive; and a great deal more text after that\nsecond line"
	createSource(t, dyn, "good", reconcile.SourceStatus{
		LastAppliedRevision: "main@sha1:0123456789abcdef0123456789abcdef01234567",
		Conditions: []metav1.Condition{
			{Type: reconcile.ConditionReady, Status: metav1.ConditionTrue, Reason: "Synced", Message: "applied", LastTransitionTime: now},
			{Type: reconcile.ConditionHealthy, Status: metav1.ConditionFalse, Reason: "Progressing", Message: "web: 1 of 2 replicas ready", LastTransitionTime: now},
		},
		// Past 10 minutes the age has no seconds, so a slow run cannot
		// change it.
		History: []reconcile.SyncRecord{{Revision: "main@sha1:0123456789abcdef0123456789abcdef01234567", Start: metav1.NewTime(now.Add(-12 * time.Minute))}},
	})
	createSource(t, dyn, "broken", reconcile.SourceStatus{
		LastAppliedRevision:   "main@sha1:0123456789abcdef0123456789abcdef01234567",
		LastAttemptedRevision: "main@sha1:fedcba9876543210fedcba9876543210fedcba98",
		Conditions:            []metav1.Condition{{Type: reconcile.ConditionReady, Status: metav1.ConditionFalse, Reason: "SyncFailed", Message: longMsg, LastTransitionTime: now}},
		History:               []reconcile.SyncRecord{{Revision: "main@sha1:fedcba9876543210fedcba9876543210fedcba98", Start: now, Error: longMsg}},
	})
	createSource(t, dyn, "unfetched", reconcile.SourceStatus{
		Conditions: []metav1.Condition{{Type: reconcile.ConditionReady, Status: metav1.ConditionFalse, Reason: "FetchFailed", Message: "clone: authentication required", LastTransitionTime: now}},
	})

	out, _, code := runCLI(t, statusCmd(), "--kubeconfig", env.Kubeconfig)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if row := tableRow(t, out, "good"); !equalPrefix(row, []string{"good", "git", "main@sha1:0123456789ab", "Ready", "Progressing", "12m", "ago"}) || len(row) != 7 {
		t.Fatalf("good: %q", row)
	}
	row := tableRow(t, out, "broken")
	if !equalPrefix(row, []string{"broken", "git", "main@sha1:0123456789ab", "SyncFailed", "-"}) {
		t.Fatalf("broken: %q", row)
	}
	line := strings.Join(row, " ")
	if !strings.Contains(line, "app/broken.yaml: Service shop/bad") || !strings.HasSuffix(line, "…") || strings.Contains(out, "second line") {
		t.Fatalf("message not shortened: %q", line)
	}
	if row := tableRow(t, out, "unfetched"); !equalPrefix(row, []string{"unfetched", "git", "-", "FetchFailed", "-", "-", "clone:"}) {
		t.Fatalf("unfetched: %q", row)
	}

	out, _, code = runCLI(t, statusCmd(), "--kubeconfig", env.Kubeconfig, "-o", "json")
	if code != 1 {
		t.Fatalf("-o json: exit %d, want 1", code)
	}
	var doc struct {
		Sources []statusRow `json:"sources"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Sources) != 3 || doc.Sources[0].Name != "broken" || doc.Sources[0].Ready || doc.Sources[0].State != "SyncFailed" ||
		doc.Sources[0].Message != longMsg || doc.Sources[0].Status.LastAttemptedRevision == "" || !doc.Sources[1].Ready || doc.Sources[1].Health != "Progressing" {
		t.Fatalf("json: %+v", doc.Sources)
	}
}

func TestStatus_errors(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	kubeconfig := env.Kubeconfig
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing kubeconfig", []string{"--kubeconfig", filepath.Join(t.TempDir(), "none")}, "none"},
		{"bad output", []string{"--kubeconfig", kubeconfig, "-o", "yaml"}, "--output"},
		{"unknown flag", []string{"--kubeconfgi", kubeconfig}, "unknown flag"},
		{"argument", []string{"--kubeconfig", kubeconfig, "extra"}, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, statusCmd(), tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, tc.want)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		env.Stop()
		_, stderr, code := runCLI(t, statusCmd(), "--kubeconfig", kubeconfig)
		if code != 2 || !strings.Contains(stderr, "kiln status:") {
			t.Fatalf("exit %d, stderr %q; want 2 and the error", code, stderr)
		}
	})
}

func TestDiff(t *testing.T) {
	e := startCLIEnv(t)
	kc := e.env.Kubeconfig
	tests := []struct {
		name   string
		change func(t *testing.T, root string)
		code   int
		want   []string
		// notWant must not appear in stdout or stderr.
		notWant []string
	}{
		{"unchanged", nil, 0, []string{"no changes: source demo", "(4 objects)"}, nil},
		{"replicas", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"app/deploy.yaml": strings.Replace(cliDeploy, "replicas: 2", "replicas: 3", 1)})
		}, 1, []string{
			"change:\n  Deployment shop/web  (app/deploy.yaml)\n    --- live\n    +++ app/deploy.yaml\n    -spec.replicas: 2\n    +spec.replicas: 3\n",
			"0 to create, 1 to change, 0 to prune",
		}, []string{"create:", "prune:", "last-applied", "resourceVersion", "generation"}},
		{"image and label", func(t *testing.T, root string) {
			d := strings.Replace(cliDeploy, "nginx:1.25", "nginx:1.27", 1)
			d = strings.Replace(d, "metadata: {name: web, namespace: shop}", "metadata: {name: web, namespace: shop, labels: {app.kubernetes.io/name: web}}", 1)
			cliWrite(t, root, map[string]string{"app/deploy.yaml": d})
		}, 1, []string{
			"    +metadata.labels[\"app.kubernetes.io/name\"]: \"web\"\n",
			"    -spec.template.spec.containers[0].image: \"nginx:1.25\"\n    +spec.template.spec.containers[0].image: \"nginx:1.27\"\n",
		}, nil},
		{"autoscaled replicas", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{
				"app/deploy.yaml": strings.Replace(cliDeploy, "replicas: 2", "replicas: 5", 1),
				"app/hpa.yaml": "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: shop}\n" +
					"spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 10\n",
			})
			// The sync leaves replicas of an autoscaled workload to the
			// autoscaler, so the 5 written here is not applied.
		}, 1, []string{"create:\n  HorizontalPodAutoscaler shop/web  (app/hpa.yaml)\n"}, []string{"+spec.replicas: 5"}},
		{"removed file", func(t *testing.T, root string) {
			if err := os.Remove(filepath.Join(root, "app", "cm.yaml")); err != nil {
				t.Fatal(err)
			}
		}, 1, []string{"prune:\n  ConfigMap shop/cfg  (app/cm.yaml)\n", "0 to create, 0 to change, 1 to prune"}, []string{"change:"}},
		{"new file", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"app/extra.yaml": strings.ReplaceAll(cliConfigMap, "name: cfg", "name: extra")})
		}, 1, []string{"create:\n  ConfigMap shop/extra  (app/extra.yaml)\n", "1 to create, 0 to change, 0 to prune"}, nil},
		{"new namespace", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"team.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n---\n" +
				strings.ReplaceAll(cliConfigMap, "namespace: shop", "namespace: team")})
		}, 1, []string{"  Namespace team  (team.yaml)\n", "  ConfigMap team/cfg  (team.yaml)\n", "2 to create"}, nil},
		{"secret", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"app/secret.yaml": cliSecret(cliSecretNew)})
		}, 1, []string{"  Secret shop/db  (app/secret.yaml)\n", "    ~data.password: (changed)\n", "    ~data.token: (changed)\n"}, canaries()},
		{"secret key added", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"app/secret.yaml": cliSecret(cliSecretOld) + "  extra: " + cliSecretNew + "\n"})
		}, 1, []string{"    +data.extra: (added)\n"}, canaries()},
		{"render error", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"app/broken.yaml": strings.Replace(cliDeploy, "replicas: 2", "replicas: 2\n  replicaz: 3", 1)})
		}, 2, []string{"app/broken.yaml", "replicaz"}, nil},
		{"server-side invalid", func(t *testing.T, root string) {
			cliWrite(t, root, map[string]string{"app/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\nspec: {ports: [{port: 0}]}\n"})
		}, 2, []string{"kiln diff: app/svc.yaml: Service shop/bad", "spec.ports[0].port"}, nil},
		{"empty folder", func(t *testing.T, root string) {
			for _, f := range []string{"ns.yaml", "app/deploy.yaml", "app/cm.yaml", "app/secret.yaml"} {
				if err := os.Remove(filepath.Join(root, f)); err != nil {
					t.Fatal(err)
				}
			}
		}, 2, []string{"would prune everything"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cliWrite(t, root, cliFiles())
			if tc.change != nil {
				tc.change(t, root)
			}
			stdout, stderr, code := runCLI(t, diffCmd(), root, "--kubeconfig", kc)
			if code != tc.code {
				t.Fatalf("exit %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, nw := range tc.notWant {
				if strings.Contains(stdout+stderr, nw) {
					t.Errorf("output contains %q", nw)
				}
			}
		})
	}

	// Nothing was written: the live objects are as the sync left them.
	d, err := e.env.Clientset.AppsV1().Deployments("shop").Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "nginx:1.25" {
		t.Fatalf("deployment changed by diff: %v", err)
	}
	if _, err := e.env.Clientset.CoreV1().ConfigMaps("shop").Get(t.Context(), "extra", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("configmap created by diff: %v", err)
	}
	if _, err := e.env.Clientset.CoreV1().Namespaces().Get(t.Context(), "team", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace created by diff: %v", err)
	}
	s, err := e.env.Clientset.CoreV1().Secrets("shop").Get(t.Context(), "db", metav1.GetOptions{})
	if err != nil || string(s.Data["password"]) != cliSecretOld {
		t.Fatalf("secret changed by diff: %v", err)
	}
}

// canaries are the Secret's values in every form output could hold them.
func canaries() []string {
	var out []string
	for _, v := range []string{cliSecretOld, cliSecretNew, cliSecretOld + "-token", cliSecretNew + "-token"} {
		out = append(out, v, base64.StdEncoding.EncodeToString([]byte(v)))
	}
	return out
}

func TestDiff_sourceSelection(t *testing.T) {
	e := startCLIEnv(t)
	root := t.TempDir()
	cliWrite(t, root, cliFiles())
	// With a second Source, --source is required.
	createSource(t, e.dyn, "other", reconcile.SourceStatus{})
	if _, stderr, code := runCLI(t, diffCmd(), root, "--kubeconfig", e.env.Kubeconfig); code != 2 || !strings.Contains(stderr, "--source") {
		t.Fatalf("two sources without --source: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, diffCmd(), root, "--kubeconfig", e.env.Kubeconfig, "--source", "nope"); code != 2 || !strings.Contains(stderr, `no source "nope"`) {
		t.Fatalf("unknown source: exit %d, %q", code, stderr)
	}
	if out, _, code := runCLI(t, diffCmd(), root, "--kubeconfig", e.env.Kubeconfig, "--source", "demo"); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("--source demo: exit %d", code)
	}
	// Against the other Source, everything is new and labelled for it:
	// nothing would be pruned, since its inventory is empty.
	out, _, code := runCLI(t, diffCmd(), root, "--kubeconfig", e.env.Kubeconfig, "--source", "other")
	if code != 1 || !strings.Contains(out, "+metadata.labels[\"gitops.kiln.dev/source\"]: \"other\"") || strings.Contains(out, "prune:") {
		t.Fatalf("--source other: exit %d", code)
	}
	// --namespace places objects that name none.
	cliWrite(t, root, map[string]string{"app/loose.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: loose}\n"})
	if out, _, code := runCLI(t, diffCmd(), root, "--kubeconfig", e.env.Kubeconfig, "--source", "demo", "--namespace", "shop"); code != 1 ||
		!strings.Contains(out, "create:\n  ConfigMap shop/loose  (app/loose.yaml)\n") {
		t.Fatalf("--namespace: exit %d", code)
	}
}

// TestCLI_binaryExitCodes runs the real binary: main must turn the
// commands' answers into exit codes 0, 1 and 2.
func TestCLI_binaryExitCodes(t *testing.T) {
	bin := testenv.Binary(t)
	e := startCLIEnv(t)
	same, changed := t.TempDir(), t.TempDir()
	cliWrite(t, same, cliFiles())
	cliWrite(t, changed, cliFiles())
	cliWrite(t, changed, map[string]string{"app/deploy.yaml": strings.Replace(cliDeploy, "replicas: 2", "replicas: 3", 1)})
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"status ready", []string{"status", "--kubeconfig", e.env.Kubeconfig}, 0, "Ready"},
		{"diff unchanged", []string{"diff", same, "--kubeconfig", e.env.Kubeconfig}, 0, "no changes"},
		{"diff changed", []string{"diff", changed, "--kubeconfig", e.env.Kubeconfig}, 1, "+spec.replicas: 3"},
		{"diff without a path", []string{"diff", "--kubeconfig", e.env.Kubeconfig}, 2, "accepts 1 arg"},
		{"diff bad flag", []string{"diff", same, "--kubeconfgi", e.env.Kubeconfig}, 2, "unknown flag"},
		{"status no server", []string{"status", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, 2, "kiln status:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), bin, tc.args...).CombinedOutput()
			code := 0
			if ee, ok := errors.AsType[*exec.ExitError](err); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(string(out), tc.want) {
				t.Fatalf("exit %d, want %d; output lacks %q?\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}
