//go:build unix

package reconcile_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
	"kiln.dev/kiln/sources/dir"
)

// These tests prove RELIABILITY promise 13 and section (b) end to end: a
// hostile or broken change to a synced directory applies nothing, deletes
// nothing, leaves every running object's UID (and resourceVersion)
// unchanged, and names the problem in the Source's status. Promise 15 is
// proved for Secrets with a canary value grepped for on every surface.
//
// Each case gets its own Source, directory and namespace, run by its own
// reconciler, over one control plane per test function.

// hostileEnv is one control plane shared by the cases of a test.
type hostileEnv struct {
	env  *testenv.Env
	kube kubernetes.Interface
	dyn  dynamic.Interface
}

func startHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	return &hostileEnv{env: env, kube: env.Clientset, dyn: dynamic.NewForConfigOrDie(env.RESTConfig)}
}

// hostileSource is one case's source: a directory synced into namespace
// name by a Source of the same name, and what its first sync left.
type hostileSource struct {
	h    *hostileEnv
	name string
	// root is the watched directory; base its parent, which also holds
	// scratch (for atomic writes) and files "outside the repository".
	base, root, scratch string
	logs                *logBuffer
	// good is the Source after the first sync; world, every object of the
	// cluster then.
	good  reconcile.Source
	world map[string]liveObject
}

// goodFiles is the first, good snapshot: one of each kind a workload
// needs. They sit in one directory so that "all files removed" is one
// rename, which the watcher cannot observe half done.
func goodFiles(ns string) map[string]string {
	return map[string]string{
		"apps/ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns + "}\n",
		"apps/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: ` + ns + `}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
`,
		"apps/svc.yaml": `apiVersion: v1
kind: Service
metadata: {name: web, namespace: ` + ns + `}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`,
		"apps/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: " + ns + "}\ndata: {greeting: hello}\n",
		"apps/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: " + ns + "}\n" +
			"data: {password: " + base64.StdEncoding.EncodeToString([]byte("good-password")) + "}\n",
	}
}

// start runs a reconciler over a fresh directory holding goodFiles, waits
// for its first sync and records the cluster. The reconciler stops when
// the (sub)test ends.
func (h *hostileEnv) start(t *testing.T, name string) *hostileSource {
	t.Helper()
	base := t.TempDir()
	s := &hostileSource{h: h, name: name, base: base, root: filepath.Join(base, "repo"), scratch: filepath.Join(base, "scratch"), logs: &logBuffer{}}
	if err := os.MkdirAll(s.scratch, 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, s.root, goodFiles(name))
	// Everything the reconciler and the source log, at every level, goes
	// to the buffer that the secret tests grep.
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// A short poll interval: the source polls while its root is missing.
	src, err := dir.New(dir.Config{Name: name, Path: s.root, PollInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := reconcile.New(reconcile.Config{RESTConfig: h.env.RESTConfig, Logger: log, Sources: []reconcile.SourceConfig{{
		Name: name, Fetcher: src,
		Spec: reconcile.SourceSpec{Kind: "dir", Path: s.root, Namespace: name, Prune: true},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the log is shown once the reconciler has
	// stopped.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reconciler log:\n%s", s.logs.String())
		}
	})
	runReconciler(t, rec)
	eventually(t, "first sync of "+name, func() string {
		s.good = s.source(t)
		if !meta.IsStatusConditionTrue(s.good.Status.Conditions, reconcile.ConditionReady) {
			return "not ready: " + conditionMessage(s.good)
		}
		return ""
	})
	if h := s.good.Status.History; len(h) != 1 || h[0].Created != 5 || h[0].Error != "" {
		t.Fatalf("first sync history: %+v", h)
	}
	if len(s.good.Status.Inventory) != 5 {
		t.Fatalf("first sync inventory: %+v", s.good.Status.Inventory)
	}
	s.world = h.world(t)
	for _, e := range s.good.Status.Inventory {
		if e.UID == "" {
			t.Fatalf("inventory entry without UID: %+v", e)
		}
	}
	return s
}

func (s *hostileSource) source(t *testing.T) reconcile.Source {
	t.Helper()
	u, err := s.h.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return reconcile.Source{}
	}
	if err != nil {
		t.Fatal(err)
	}
	var src reconcile.Source
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &src); err != nil {
		t.Fatal(err)
	}
	return src
}

// sourceJSON is the whole Source object as the API serves it.
func (s *hostileSource) sourceJSON(t *testing.T) string {
	t.Helper()
	u, err := s.h.dyn.Resource(reconcile.SourceGVR).Get(t.Context(), s.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFailed waits until the Source is not Ready for reason with a
// message containing every want, and returns the Source then.
func (s *hostileSource) waitFailed(t *testing.T, reason string, want ...string) reconcile.Source {
	t.Helper()
	var src reconcile.Source
	eventually(t, "Ready=False "+reason, func() string {
		src = s.source(t)
		c := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason {
			return "Ready condition: " + conditionMessage(src)
		}
		for _, w := range want {
			if !strings.Contains(c.Message, w) {
				return fmt.Sprintf("Ready message %q does not contain %q", c.Message, w)
			}
		}
		return ""
	})
	return src
}

// waitEvent waits for a Warning event with reason on the Source.
func (s *hostileSource) waitEvent(t *testing.T, reason string) {
	t.Helper()
	eventually(t, reason+" event", func() string {
		evs, err := s.h.kube.CoreV1().Events(metav1.NamespaceDefault).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == s.name && e.Reason == reason && e.Type == corev1.EventTypeWarning {
				return ""
			}
		}
		return "no event yet"
	})
}

// assertUntouched checks that the cluster is exactly as the first sync
// left it: no object created, deleted or written (same UIDs and
// resourceVersions), except Source status updates. It also checks the
// last applied revision and inventory.
func (s *hostileSource) assertUntouched(t *testing.T, src reconcile.Source) {
	t.Helper()
	if src.Status.LastAppliedRevision != s.good.Status.LastAppliedRevision {
		t.Errorf("LastAppliedRevision = %s, want %s", src.Status.LastAppliedRevision, s.good.Status.LastAppliedRevision)
	}
	if !slices.Equal(src.Status.Inventory, s.good.Status.Inventory) {
		t.Errorf("inventory changed:\n got %+v\nwant %+v", src.Status.Inventory, s.good.Status.Inventory)
	}
	if src.Spec != s.good.Spec {
		t.Errorf("Source spec changed: %+v, was %+v", src.Spec, s.good.Spec)
	}
	now := s.h.world(t)
	for _, k := range slices.Sorted(maps.Keys(s.world)) {
		was, ok := now[k]
		switch {
		case !ok:
			t.Errorf("%s was deleted", k)
		case was.uid != s.world[k].uid:
			t.Errorf("%s was replaced: UID %s, was %s", k, was.uid, s.world[k].uid)
		case was.rv != s.world[k].rv && !strings.HasPrefix(k, "sources/"):
			t.Errorf("%s was written: resourceVersion %s, was %s", k, was.rv, s.world[k].rv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(now)) {
		if _, ok := s.world[k]; !ok {
			t.Errorf("%s was created", k)
		}
	}
	// The managed objects, by the UIDs the inventory recorded.
	for _, e := range s.good.Status.Inventory {
		k := inventoryWorldKey(e)
		if got := now[k].uid; got != e.UID {
			t.Errorf("%s: UID %q, inventory says %s", k, got, e.UID)
		}
	}
}

// assertSyncRecord checks the history record of a failed sync: one more
// record than after the first sync, with the error and the file, and
// nothing done.
func (s *hostileSource) assertSyncRecord(t *testing.T, src reconcile.Source, want, file string) reconcile.SyncRecord {
	t.Helper()
	h := src.Status.History
	if len(h) != len(s.good.Status.History)+1 {
		t.Fatalf("history has %d records, want %d: %+v", len(h), len(s.good.Status.History)+1, h)
	}
	r := h[0]
	if !strings.Contains(r.Error, want) {
		t.Errorf("history error %q does not contain %q", r.Error, want)
	}
	if r.File != file {
		t.Errorf("history file = %q, want %q", r.File, file)
	}
	if r.Created+r.Configured+r.Unchanged+r.Pruned != 0 {
		t.Errorf("failed sync record counts work done: %+v", r)
	}
	if r.Revision == s.good.Status.LastAppliedRevision || r.Revision != src.Status.LastAttemptedRevision {
		t.Errorf("record revision %s, last attempted %s, last applied %s", r.Revision, src.Status.LastAttemptedRevision, s.good.Status.LastAppliedRevision)
	}
	return r
}

// assertFetchRecord checks that a failed fetch (which has no revision)
// added one record above the good history, naming the error and the file
// (empty when the failure is not about one file).
func (s *hostileSource) assertFetchRecord(t *testing.T, src reconcile.Source, want, file string) {
	t.Helper()
	h := src.Status.History
	if len(h) != len(s.good.Status.History)+1 {
		t.Fatalf("history has %d records, want %d: %+v", len(h), len(s.good.Status.History)+1, h)
	}
	if r := h[0]; r.Revision != "" || !strings.Contains(r.Error, want) || r.File != file {
		t.Errorf("fetch record = %+v, want no revision, an error with %q and file %q", r, want, file)
	}
	if !slices.EqualFunc(h[1:], s.good.Status.History, func(a, b reconcile.SyncRecord) bool {
		return a.Revision == b.Revision && a.Error == b.Error && a.Start.Equal(&b.Start)
	}) {
		t.Errorf("older history changed by a failed fetch: %+v", h)
	}
	if src.Status.LastAttemptedRevision != s.good.Status.LastAttemptedRevision {
		t.Errorf("LastAttemptedRevision = %s, want %s", src.Status.LastAttemptedRevision, s.good.Status.LastAttemptedRevision)
	}
}

// liveObject is what identifies one version of one object.
type liveObject struct{ uid, rv string }

// worldGVRs are the resources whose objects a sync could create, change
// or delete in these tests (events are left out: failures record them).
var worldGVRs = []schema.GroupVersionResource{
	{Version: "v1", Resource: "namespaces"},
	{Version: "v1", Resource: "configmaps"},
	{Version: "v1", Resource: "secrets"},
	{Version: "v1", Resource: "services"},
	{Version: "v1", Resource: "serviceaccounts"},
	{Version: "v1", Resource: "pods"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Group: "apps", Version: "v1", Resource: "replicasets"},
	reconcile.SourceGVR,
}

// world lists every object of worldGVRs, keyed "resource/namespace/name".
func (h *hostileEnv) world(t *testing.T) map[string]liveObject {
	t.Helper()
	out := map[string]liveObject{}
	for _, gvr := range worldGVRs {
		l, err := h.dyn.Resource(gvr).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("list %s: %v", gvr.Resource, err)
		}
		for _, u := range l.Items {
			out[gvr.Resource+"/"+u.GetNamespace()+"/"+u.GetName()] = liveObject{uid: string(u.GetUID()), rv: u.GetResourceVersion()}
		}
	}
	return out
}

func inventoryWorldKey(e reconcile.InventoryEntry) string {
	resource := strings.ToLower(e.Kind) + "s"
	return resource + "/" + e.Namespace + "/" + e.Name
}

// writeTree writes files under root, creating directories.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		writeFile(t, root, name, content)
	}
}

// place writes a file into the tree atomically (written beside the tree,
// then renamed in), so that the watcher never reads it half written: a
// half-written file could be a valid (say, empty) one and be applied.
func (s *hostileSource) place(t *testing.T, rel string, data []byte) {
	t.Helper()
	tmp, err := os.CreateTemp(s.scratch, "place-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		t.Fatal(err)
	}
}

// placeDir moves a directory built outside the tree into it in one rename.
func (s *hostileSource) placeDir(t *testing.T, rel string, files map[string]string) {
	t.Helper()
	d, err := os.MkdirTemp(s.scratch, "dir-")
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, d, files)
	if err := os.Rename(d, filepath.Join(s.root, filepath.FromSlash(rel))); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log output from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// aliasBomb is "billion laughs": 9 levels of 9 aliases, 9^9 strings
// once expanded (CVE-2019-11253).
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a0: &a0 lol\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "  a%d: &a%d [", i, i)
		for j := range 9 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestHostile_appliesNothingDeletesNothing(t *testing.T) {
	h := startHostileEnv(t)
	const (
		fetch  = "FetchFailed" // the source could not read the tree
		refuse = "SyncFailed"  // the tree was read; rendering or validation refused it
	)
	tests := []struct {
		name   string
		change func(t *testing.T, s *hostileSource)
		// reason is the Ready condition's; want are strings the message and
		// (for sync failures) the history record must contain; file is the
		// history record's file.
		reason string
		want   []string
		file   string
		// maxMS bounds the failed sync's duration (0: unbounded).
		maxMS int64
		// absent must not appear anywhere in the Source object.
		absent string
		// recover, if set, undoes the change; the source must be Ready again
		// on the same revision with nothing touched.
		recover func(t *testing.T, s *hostileSource)
	}{
		{
			name: "yaml-syntax-error",
			change: func(t *testing.T, s *hostileSource) {
				// The ConfigMap's file no longer parses: its object must not
				// be taken as removed and pruned.
				s.place(t, "apps/cm.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg\ndata: {greeting: hello}\n"))
			},
			reason: refuse, want: []string{"apps/cm.yaml", "YAML"}, file: "apps/cm.yaml",
		},
		{
			name: "unknown-nested-field",
			change: func(t *testing.T, s *hostileSource) {
				s.place(t, "apps/deploy.yaml", []byte(strings.Replace(goodFiles(s.name)["apps/deploy.yaml"],
					"image: nginx:1.25", "image: nginx:1.26\n        imagePullPolicyy: Always", 1)))
			},
			reason: refuse, want: []string{"apps/deploy.yaml", "spec.template.spec.containers[0].imagePullPolicyy", "unknown field"}, file: "apps/deploy.yaml",
		},
		{
			name: "same-object-in-two-files",
			change: func(t *testing.T, s *hostileSource) {
				s.place(t, "apps/dup.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: "+s.name+"}\ndata: {greeting: hijacked}\n"))
			},
			reason: refuse, want: []string{"apps/dup.yaml", "apps/cm.yaml", "duplicate object"}, file: "apps/dup.yaml",
		},
		{
			name: "symlink-outside-repo",
			change: func(t *testing.T, s *hostileSource) {
				if err := os.Symlink("/etc/passwd", filepath.Join(s.root, "apps", "passwd.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			reason: fetch, want: []string{"apps/passwd.yaml", "symlink"}, absent: "root:x:0:0",
		},
		{
			name: "kustomization-escapes-repo",
			change: func(t *testing.T, s *hostileSource) {
				// A valid manifest outside the repository, which must never be
				// read, let alone applied.
				writeFile(t, s.base, "outside.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: escaped, namespace: "+s.name+"}\n")
				s.placeDir(t, "evil", map[string]string{
					"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../outside.yaml]\n",
				})
			},
			reason: refuse, want: []string{"evil/kustomization.yaml", "../../outside.yaml", "outside the repository"}, file: "evil/kustomization.yaml",
		},
		{
			name: "10MiB-file",
			change: func(t *testing.T, s *hostileSource) {
				s.place(t, "apps/huge.yaml", bytes.Repeat([]byte("# padding padding padding padding padding padding pad\n"), 10<<20/54+1))
			},
			// The size is known from a stat, before anything is read.
			reason: fetch, want: []string{"apps/huge.yaml", "file too large"},
		},
		{
			name: "yaml-alias-bomb",
			change: func(t *testing.T, s *hostileSource) {
				s.place(t, "apps/bomb.yaml", []byte(aliasBomb()))
			},
			reason: refuse, want: []string{"apps/bomb.yaml", "alias"}, file: "apps/bomb.yaml", maxMS: 2000,
		},
		{
			name: "10000-deep-nesting",
			change: func(t *testing.T, s *hostileSource) {
				deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
				s.place(t, "apps/deep.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: deep}\ndata: {x: "+deep+"}\n"))
			},
			reason: refuse, want: []string{"apps/deep.yaml", "nested deeper than"}, file: "apps/deep.yaml", maxMS: 2000,
		},
		{
			name: "binary-yaml-file",
			change: func(t *testing.T, s *hostileSource) {
				bin := make([]byte, 4096)
				for i := range bin {
					bin[i] = byte(i * 7)
				}
				s.place(t, "apps/x.yaml", bin)
			},
			reason: refuse, want: []string{"apps/x.yaml", "not a text file"}, file: "apps/x.yaml",
		},
		{
			name: "empty-tree",
			change: func(t *testing.T, s *hostileSource) {
				// Every file goes at once (one rename), as a bad commit or an
				// emptied checkout would.
				if err := os.Rename(filepath.Join(s.root, "apps"), filepath.Join(s.scratch, "apps")); err != nil {
					t.Fatal(err)
				}
			},
			reason: refuse, want: []string{"would prune everything"},
		},
		{
			name: "targets-kiln-source",
			change: func(t *testing.T, s *hostileSource) {
				// A repository that could write Source objects could point
				// kiln elsewhere or delete its own sources.
				s.place(t, "apps/source.yaml", []byte("apiVersion: gitops.kiln.dev/v1alpha1\nkind: Source\nmetadata: {name: "+s.name+
					"}\nspec: {kind: dir, path: /, prune: true, allowEmpty: true}\n"))
			},
			reason: refuse, want: []string{"apps/source.yaml", "Source h-targets-kiln-source", "managed by kiln itself"}, file: "apps/source.yaml",
		},
		{
			name: "fifo",
			change: func(t *testing.T, s *hostileSource) {
				if err := syscall.Mkfifo(filepath.Join(s.root, "apps", "x.yaml"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			reason: fetch, want: []string{"apps/x.yaml", "not a regular file", "named pipe"},
			// The source is still alive: it did not block on the FIFO.
			recover: func(t *testing.T, s *hostileSource) {
				if err := os.Remove(filepath.Join(s.root, "apps", "x.yaml")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := h.start(t, "h-"+strings.ToLower(tc.name))
			tc.change(t, s)
			src := s.waitFailed(t, tc.reason, tc.want...)
			c := meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady)
			t.Logf("Ready=False %s: %s", c.Reason, c.Message)
			if !meta.IsStatusConditionTrue(src.Status.Conditions, reconcile.ConditionStalled) {
				t.Errorf("Stalled is not True: %+v", src.Status.Conditions)
			}
			s.assertUntouched(t, src)
			if tc.reason == refuse {
				r := s.assertSyncRecord(t, src, tc.want[0], tc.file)
				t.Logf("history: file %q, %d ms", r.File, r.DurationMS)
				if tc.maxMS > 0 && r.DurationMS > tc.maxMS {
					t.Errorf("refusing took %d ms, want at most %d", r.DurationMS, tc.maxMS)
				}
			} else {
				s.assertFetchRecord(t, src, tc.want[len(tc.want)-1], tc.want[0])
			}
			s.waitEvent(t, tc.reason)
			if tc.absent != "" && strings.Contains(s.sourceJSON(t), tc.absent) {
				t.Errorf("the Source shows %q", tc.absent)
			}
			if tc.recover == nil {
				return
			}
			tc.recover(t, s)
			eventually(t, "Ready again", func() string {
				src = s.source(t)
				if !meta.IsStatusConditionTrue(src.Status.Conditions, reconcile.ConditionReady) {
					return "not ready: " + conditionMessage(src)
				}
				return ""
			})
			s.assertUntouched(t, src)
		})
	}
}

func TestHostile_rootDeletedAndRecreated(t *testing.T) {
	h := startHostileEnv(t)
	s := h.start(t, "h-root-deleted")
	// The root goes in one step (renamed away, then removed): a watcher
	// must see the directory gone, not a tree shrinking file by file.
	gone := filepath.Join(s.scratch, "gone")
	if err := os.Rename(s.root, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	src := s.waitFailed(t, "FetchFailed", "root directory unavailable", s.root)
	t.Logf("Ready=False: %s", meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady).Message)
	s.assertUntouched(t, src)
	s.assertFetchRecord(t, src, "root directory unavailable", "")
	s.waitEvent(t, "FetchFailed")

	// The root comes back with the good files: the same revision, applied
	// over the same objects.
	tmp := filepath.Join(s.scratch, "repo")
	writeTree(t, tmp, goodFiles(s.name))
	if err := os.Rename(tmp, s.root); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready again", func() string {
		src = s.source(t)
		if !meta.IsStatusConditionTrue(src.Status.Conditions, reconcile.ConditionReady) {
			return "not ready: " + conditionMessage(src)
		}
		return ""
	})
	if r := src.Status.History[0]; len(src.Status.History) != 3 || r.Unchanged != 5 || r.Created+r.Configured+r.Pruned != 0 || r.Error != "" {
		t.Errorf("history after the root came back: %+v", src.Status.History)
	}
	s.assertUntouched(t, src)
}

// hostileCanary is a Secret value that must never be shown.
const hostileCanary = "kiln-canary-7d3f9a1c5e"

func TestHostile_invalidSecretsNeverShowTheirValues(t *testing.T) {
	h := startHostileEnv(t)
	b64 := base64.StdEncoding.EncodeToString([]byte(hostileCanary))
	secret := func(ns, name, body string) []byte {
		return []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: " + ns + "}\n" + body)
	}
	tests := []struct {
		name string
		// file is replaced (or added) with the Secret built from body.
		file, secret, body string
		// want is in the Ready message; file is the history record's.
		want string
	}{
		{"data-not-base64", "apps/secret.yaml", "creds", "data: {password: " + hostileCanary + "}\n", "data.password: invalid value: not valid base64"},
		{"bool-field-holds-canary", "apps/secret.yaml", "creds", "immutable: " + hostileCanary + "\ndata: {password: " + b64 + "}\n", "immutable: invalid value"},
		{"unknown-field-holds-canary", "apps/secret.yaml", "creds", "dta: {password: " + hostileCanary + "}\n", "dta: unknown field"},
		{"data-holds-object", "apps/secret.yaml", "creds", "data: {password: {value: " + hostileCanary + "}}\n", "data.password: invalid value"},
		{"duplicate-key", "apps/secret.yaml", "creds", "stringData:\n  password: " + hostileCanary + "\n  password: " + hostileCanary + "x\n", "duplicate field"},
		{"yaml-error-near-canary", "apps/secret.yaml", "creds", "stringData:\n  password: \"" + hostileCanary + "\n  user: x\n", "apps/secret.yaml"},
		// Rejected by the API server's validation (the dry run): a new
		// Secret (create) and the existing one (patch).
		{"invalid-key-new-secret", "apps/extra.yaml", "extra", "stringData: {\"bad key!\": " + hostileCanary + "}\n", "bad key!"},
		{"invalid-key-existing-secret", "apps/secret.yaml", "creds", "data: {password: " + b64 + ", \"bad key!\": " + b64 + "}\n", "bad key!"},
		{"dockerconfigjson-not-json", "apps/extra.yaml", "extra", "type: kubernetes.io/dockerconfigjson\nstringData: {.dockerconfigjson: " + hostileCanary + "}\n", ".dockerconfigjson"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := h.start(t, "s-"+tc.name)
			s.place(t, tc.file, secret(s.name, tc.secret, tc.body))
			src := s.waitFailed(t, "SyncFailed", tc.file, tc.want)
			t.Logf("Ready=False: %s", meta.FindStatusCondition(src.Status.Conditions, reconcile.ConditionReady).Message)
			s.assertUntouched(t, src)
			s.assertSyncRecord(t, src, tc.file, tc.file)
			s.waitEvent(t, "SyncFailed")
			assertNoCanary(t, s, hostileCanary, b64)
		})
	}

	// The API server's own errors for invalid Secrets, to any client.
	t.Run("apiserver-errors", func(t *testing.T) {
		cases := []*corev1.Secret{
			{StringData: map[string]string{"bad key!": hostileCanary}},
			{Data: map[string][]byte{"bad key!": []byte(hostileCanary)}},
			{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(hostileCanary)}},
			{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths": ` + hostileCanary + `}`)}},
			{Type: corev1.SecretTypeDockercfg, StringData: map[string]string{corev1.DockerConfigKey: "[" + hostileCanary}},
			{Type: corev1.SecretTypeTLS, StringData: map[string]string{"tls.key": hostileCanary}},
		}
		for i, sec := range cases {
			sec.Name = fmt.Sprintf("canary-%d", i)
			for _, dry := range [][]string{{metav1.DryRunAll}, nil} {
				_, err := h.kube.CoreV1().Secrets("default").Create(t.Context(), sec, metav1.CreateOptions{DryRun: dry})
				if !apierrors.IsInvalid(err) {
					t.Fatalf("secret %d: got %v, want 422 Invalid", i, err)
				}
				st := err.(apierrors.APIStatus).Status()
				b, _ := json.Marshal(st)
				for _, v := range []string{hostileCanary, b64, "'" + hostileCanary[:1] + "'"} {
					if strings.Contains(string(b), v) {
						t.Errorf("secret %d: the API error shows %q: %s", i, v, b)
					}
				}
			}
		}
	})
}

// assertNoCanary greps every surface: the Source object, every event and
// every line the reconciler logged.
func assertNoCanary(t *testing.T, s *hostileSource, values ...string) {
	t.Helper()
	evs, err := s.h.kube.CoreV1().Events("").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	evJSON, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	surfaces := map[string]string{
		"Source object":  s.sourceJSON(t),
		"events":         string(evJSON),
		"reconciler log": s.logs.String(),
	}
	if !strings.Contains(surfaces["reconciler log"], "sync failed") {
		t.Errorf("the reconciler log lacks the failure; is it captured?\n%s", surfaces["reconciler log"])
	}
	for what, text := range surfaces {
		for _, v := range values {
			if strings.Contains(text, v) {
				t.Errorf("%s shows the secret value %q:\n%s", what, v, text)
			}
		}
	}
}
