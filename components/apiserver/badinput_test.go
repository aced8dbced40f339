package apiserver_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
)

// These tests send bad requests over real HTTPS, the way kubectl and
// curl do, and read the raw reply: client-go would turn the body into an
// error and hide what the Status says. Each case checks the code, that the
// body is a Status naming the problem, and that nothing was written
// (RELIABILITY.md promise 3).

// startBadInputEnv starts a control plane whose store never writes on its
// own (no compaction), so an unchanged etcd revision proves nothing was
// written.
func startBadInputEnv(t *testing.T, opts testenv.Options) (*testenv.Env, *badInputClient) {
	t.Helper()
	opts.Store.CompactInterval = -1
	env := testenv.Start(t, opts)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(env.CAPEM) {
		t.Fatal("bad CA PEM")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(hc.CloseIdleConnections)
	return env, &badInputClient{t: t, env: env, hc: hc}
}

// badInputClient sends raw requests to a testenv server.
type badInputClient struct {
	t   *testing.T
	env *testenv.Env
	hc  *http.Client
}

// rawResp is a reply read in full.
type rawResp struct {
	code   int
	header http.Header
	body   []byte
}

// rawReq describes one raw request; the zero token means the admin's.
type rawReq struct {
	method, path, contentType string
	body                      []byte
	// token overrides the admin token; noToken sends no Authorization.
	token   string
	noToken bool
}

func (c *badInputClient) do(t *testing.T, r rawReq) rawResp {
	t.Helper()
	hr, err := http.NewRequestWithContext(t.Context(), r.method, c.env.URL+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.contentType != "" {
		hr.Header.Set("Content-Type", r.contentType)
	}
	hr.Header.Set("Accept", "application/json")
	switch {
	case r.noToken:
	case r.token != "":
		hr.Header.Set("Authorization", "Bearer "+r.token)
	default:
		hr.Header.Set("Authorization", "Bearer "+c.env.Token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", r.method, r.path, err)
	}
	return rawResp{code: resp.StatusCode, header: resp.Header, body: body}
}

func (c *badInputClient) post(t *testing.T, path, ct string, body []byte) rawResp {
	t.Helper()
	return c.do(t, rawReq{method: http.MethodPost, path: path, contentType: ct, body: body})
}

// wantStatusReply checks that resp is a Failure Status with code and reason
// whose message contains every one of msgs, and returns it.
func wantStatusReply(t *testing.T, resp rawResp, code int, reason metav1.StatusReason, msgs ...string) metav1.Status {
	t.Helper()
	if resp.code != code {
		t.Fatalf("code = %d, want %d; body: %s", resp.code, code, truncBody(resp.body))
	}
	if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var st metav1.Status
	if err := json.Unmarshal(resp.body, &st); err != nil {
		t.Fatalf("body is not a Status: %v: %s", err, truncBody(resp.body))
	}
	if st.Kind != "Status" || st.APIVersion != "v1" {
		t.Errorf("kind/apiVersion = %q/%q, want Status/v1", st.Kind, st.APIVersion)
	}
	if st.Status != metav1.StatusFailure {
		t.Errorf("status = %q, want Failure", st.Status)
	}
	if int(st.Code) != code {
		t.Errorf("status.code = %d, want %d", st.Code, code)
	}
	if st.Reason != reason {
		t.Errorf("reason = %q, want %q (message %q)", st.Reason, reason, st.Message)
	}
	if st.Message == "" {
		t.Error("message is empty")
	}
	for _, m := range msgs {
		if !strings.Contains(st.Message, m) {
			t.Errorf("message %q does not contain %q", st.Message, m)
		}
	}
	return st
}

// wantCause checks that a 422 Status names field among its causes.
func wantCause(t *testing.T, st metav1.Status, kind, name, fieldPath string) {
	t.Helper()
	if st.Details == nil {
		t.Fatalf("no details in %+v", st)
	}
	if st.Details.Kind != kind || st.Details.Name != name {
		t.Errorf("details kind/name = %q/%q, want %q/%q", st.Details.Kind, st.Details.Name, kind, name)
	}
	var fields []string
	for _, c := range st.Details.Causes {
		if c.Field == fieldPath {
			if c.Message == "" || c.Type == "" {
				t.Errorf("cause for %s has no reason or message: %+v", fieldPath, c)
			}
			return
		}
		fields = append(fields, c.Field)
	}
	t.Errorf("no cause with field %q; causes name %q (message %q)", fieldPath, fields, st.Message)
}

func truncBody(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

func etcdRevision(t *testing.T, env *testenv.Env) int64 {
	t.Helper()
	rev, err := env.Store.CurrentRevision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// wantNoWrite fails if the store's revision moved since before.
func wantNoWrite(t *testing.T, env *testenv.Env, before int64) {
	t.Helper()
	if after := etcdRevision(t, env); after != before {
		t.Errorf("etcd revision moved from %d to %d: a rejected request wrote", before, after)
	}
}

func wantPodAbsent(t *testing.T, env *testenv.Env, ns, name string) {
	t.Helper()
	_, err := env.Clientset.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("pod %s/%s: err = %v, want NotFound", ns, name, err)
	}
}

func minimalPodJSON(name string) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":%q},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`, name)
}

func deploymentJSON(name, extraContainerField string) []byte {
	return fmt.Appendf(nil, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":%q},
"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"containers":[{"name":"c","image":"nginx"%s}]}}}}`, name, extraContainerField)
}

const (
	podsPath   = "/api/v1/namespaces/default/pods"
	deploysURL = "/apis/apps/v1/namespaces/default/deployments"
	cmsPath    = "/api/v1/namespaces/default/configmaps"
	svcsPath   = "/api/v1/namespaces/default/services"
	sourcesURL = "/apis/gitops.kiln.dev/v1alpha1/sources" // cluster-scoped
)

func TestCreate_malformedBody(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	tests := []struct {
		name string
		ct   string
		body []byte
		msgs []string
	}{
		{"truncated json", "application/json", minimalPodJSON("trunc")[:40],
			[]string{`Pod in version "v1" cannot be handled as a Pod`, "unexpected end of JSON input"}},
		{"json syntax error", "application/json", []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"},}`),
			[]string{`cannot be handled as a Pod`, "invalid character '}'"}},
		{"malformed yaml", "application/yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [yaml\nspec: {\n"),
			[]string{"error decoding YAML body"}},
		{"yaml tab indentation", "application/yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n\tname: tab\n"),
			[]string{"error decoding YAML body"}},
		{"json array", "application/json", []byte(`[` + string(minimalPodJSON("arr")) + `]`),
			[]string{`cannot be handled as a Pod`, "array"}},
		{"yaml list", "application/yaml", []byte("- apiVersion: v1\n  kind: Pod\n"),
			[]string{`cannot be handled as a Pod`}},
		{"json string", "application/json", []byte(`"a pod"`),
			[]string{`cannot be handled as a Pod`}},
		{"empty body", "application/json", nil,
			[]string{`cannot be handled as a Pod`, "empty"}},
		{"whitespace body", "application/json", []byte(" \n\t"),
			[]string{`cannot be handled as a Pod`, "empty"}},
		{"json null", "application/json", []byte("null"),
			[]string{`cannot be handled as a Pod`}},
		{"yaml empty document", "application/yaml", []byte("---\n"),
			[]string{`cannot be handled as a Pod`}},
		{"bad protobuf", "application/vnd.kubernetes.protobuf", []byte("k8s\x00\x0a\xff\xff"),
			[]string{`cannot be handled as a Pod`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			resp := c.post(t, podsPath, tc.ct, tc.body)
			wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, tc.msgs...)
			wantNoWrite(t, env, before)
		})
	}
	for _, name := range []string{"trunc", "arr", "x", "tab"} {
		wantPodAbsent(t, env, "default", name)
	}

	// The same bodies on an update leave the object as it was.
	if _, err := env.Clientset.CoreV1().Pods("default").Create(t.Context(), podFromJSON(t, minimalPodJSON("keep")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run("update/"+tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			resp := c.do(t, rawReq{method: http.MethodPut, path: podsPath + "/keep", contentType: tc.ct, body: tc.body})
			if resp.code != http.StatusBadRequest {
				t.Fatalf("PUT code = %d, want 400: %s", resp.code, truncBody(resp.body))
			}
			wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest)
			wantNoWrite(t, env, before)
		})
	}
}

// Sources have no Go type, so the server checks their metadata itself.
func TestCreate_unstructuredMetadata(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	tests := []struct{ name, metadata, want string }{
		{"label that is a number", `{"name":"num","labels":{"a":1}}`, "metadata.labels of type string"},
		{"metadata that is a string", `"src"`, "metadata"},
		{"bad creationTimestamp", `{"name":"ts","creationTimestamp":"yesterday"}`, "metadata"},
		{"annotations that are a list", `{"name":"ann","annotations":["a"]}`, "metadata.annotations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := fmt.Appendf(nil, `{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":%s,"spec":{}}`, tc.metadata)
			before := etcdRevision(t, env)
			resp := c.post(t, sourcesURL, "application/json", body)
			wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, `Source in version "v1alpha1" cannot be handled as a Source`, tc.want)
			wantNoWrite(t, env, before)
		})
	}
	t.Run("patch", func(t *testing.T) {
		resp := c.post(t, sourcesURL, "application/json", []byte(`{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":{"name":"ok"},"spec":{}}`))
		if resp.code != http.StatusCreated {
			t.Fatalf("create = %d: %s", resp.code, truncBody(resp.body))
		}
		before := etcdRevision(t, env)
		resp = c.do(t, rawReq{method: http.MethodPatch, path: sourcesURL + "/ok", contentType: "application/merge-patch+json", body: []byte(`{"metadata":{"labels":{"a":true}}}`)})
		wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, "metadata.labels of type string")
		wantNoWrite(t, env, before)
	})
}

func podFromJSON(t *testing.T, b []byte) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func TestCreate_fieldValidation(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	unknownPod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s"},"spec":{"foo":1,"containers":[{"name":"c","image":"busybox"}]}}`)
	dupPod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","labels":{"a":"1"},"labels":{"b":"2"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`)
	nestedDeploy := string(deploymentJSON("%s", `,"imagePullPolicyy":"Always"`))
	yamlUnknown := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  foo: 1\n  containers:\n  - name: c\n    image: busybox\n"
	yamlDup := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  name: %s\nspec:\n  containers:\n  - name: c\n    image: busybox\n"

	strict := []struct {
		name, path, ct, body, want string
	}{
		{"unknown field", podsPath, "application/json", string(unknownPod), `unknown field "spec.foo"`},
		{"nested unknown field", deploysURL, "application/json", nestedDeploy, `unknown field "spec.template.spec.containers[0].imagePullPolicyy"`},
		{"duplicate field", podsPath, "application/json", string(dupPod), `duplicate field "metadata.labels"`},
		{"yaml unknown field", podsPath, "application/yaml", yamlUnknown, `unknown field "spec.foo"`},
		{"yaml duplicate field", podsPath, "application/yaml", yamlDup, `"name" already set in map`},
	}
	for i, tc := range strict {
		t.Run("Strict/"+tc.name, func(t *testing.T) {
			name := fmt.Sprintf("strict-%d", i)
			before := etcdRevision(t, env)
			resp := c.post(t, tc.path+"?fieldValidation=Strict", tc.ct, []byte(strings.ReplaceAll(tc.body, "%s", name)))
			wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, tc.want)
			wantNoWrite(t, env, before)
		})
	}

	warn := []struct {
		name, path, body, want string
	}{
		{"unknown field", podsPath, string(unknownPod), `unknown field \"spec.foo\"`},
		{"nested unknown field", deploysURL, nestedDeploy, `unknown field \"spec.template.spec.containers[0].imagePullPolicyy\"`},
		{"duplicate field", podsPath, string(dupPod), `duplicate field \"metadata.labels\"`},
	}
	for _, fv := range []string{"", "?fieldValidation=Warn"} {
		for i, tc := range warn {
			t.Run("Warn"+fv+"/"+tc.name, func(t *testing.T) {
				name := fmt.Sprintf("warn-%d-%d", len(fv), i)
				resp := c.post(t, tc.path+fv, "application/json", []byte(strings.ReplaceAll(tc.body, "%s", name)))
				if resp.code != http.StatusCreated {
					t.Fatalf("code = %d, want 201: %s", resp.code, truncBody(resp.body))
				}
				w := strings.Join(resp.header.Values("Warning"), "\n")
				if !strings.Contains(w, tc.want) || !strings.HasPrefix(w, "299 ") {
					t.Errorf("Warning header %q does not carry %q", w, tc.want)
				}
			})
		}
	}

	// client-go surfaces the warning through its handler too.
	t.Run("Warn/client-go", func(t *testing.T) {
		var got []string
		cfg := rest.CopyConfig(env.RESTConfig)
		cfg.WarningHandler = warningFunc(func(_ int, _ string, text string) { got = append(got, text) })
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(strings.ReplaceAll(string(unknownPod), "%s", "warn-cg"))
		res := cs.CoreV1().RESTClient().Post().Namespace("default").Resource("pods").Body(body).Do(t.Context())
		if err := res.Error(); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != `unknown field "spec.foo"` {
			t.Errorf("warnings = %q, want [unknown field \"spec.foo\"]", got)
		}
	})

	t.Run("Ignore", func(t *testing.T) {
		resp := c.post(t, podsPath+"?fieldValidation=Ignore", "application/json", []byte(strings.ReplaceAll(string(unknownPod), "%s", "ignored")))
		if resp.code != http.StatusCreated {
			t.Fatalf("code = %d, want 201: %s", resp.code, truncBody(resp.body))
		}
		if w := resp.header.Values("Warning"); len(w) != 0 {
			t.Errorf("Warning headers = %q, want none", w)
		}
	})

	t.Run("bad fieldValidation value", func(t *testing.T) {
		before := etcdRevision(t, env)
		resp := c.post(t, podsPath+"?fieldValidation=Loose", "application/json", minimalPodJSON("loose"))
		wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, "fieldValidation", `"Loose"`)
		wantNoWrite(t, env, before)
	})

	// Strict applies to updates and patches as well, and leaves the object
	// as it was.
	t.Run("Strict/update and patch", func(t *testing.T) {
		pod, err := env.Clientset.CoreV1().Pods("default").Get(t.Context(), "ignored", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(pod)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		m["spec"].(map[string]any)["foo"] = 1
		b, _ = json.Marshal(m)
		before := etcdRevision(t, env)
		resp := c.do(t, rawReq{method: http.MethodPut, path: podsPath + "/ignored?fieldValidation=Strict", contentType: "application/json", body: b})
		wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, `unknown field "spec.foo"`)
		resp = c.do(t, rawReq{method: http.MethodPatch, path: podsPath + "/ignored?fieldValidation=Strict",
			contentType: "application/merge-patch+json", body: []byte(`{"spec":{"foo":1}}`)})
		wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, `unknown field "spec.foo"`)
		wantNoWrite(t, env, before)
	})
}

type warningFunc func(code int, agent, text string)

func (f warningFunc) HandleWarningHeader(code int, agent, text string) { f(code, agent, text) }

func TestCreate_typeMismatch(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	tests := []struct {
		name, path, body string
		msgs             []string
	}{
		{"kind", podsPath, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"k"}}`,
			[]string{"the kind in the data (Service) does not match the expected kind (Pod)"}},
		{"apiVersion", podsPath, `{"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"av"}}`,
			[]string{"the API version in the data (apps/v1) does not match the expected API version (v1)"}},
		{"group of a deployment", deploysURL, `{"apiVersion":"extensions/v1beta1","kind":"Deployment","metadata":{"name":"ext"}}`,
			[]string{"(extensions/v1beta1)", "(apps/v1)"}},
		{"namespace", podsPath, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"ns","namespace":"kube-system"},"spec":{"containers":[{"name":"c","image":"i"}]}}`,
			[]string{"the namespace of the provided object does not match the namespace sent on the request"}},
		{"source kind", sourcesURL, `{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Pod","metadata":{"name":"sk"}}`,
			[]string{"the kind in the data (Pod) does not match the expected kind (Source)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			resp := c.post(t, tc.path, "application/json", []byte(tc.body))
			wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, tc.msgs...)
			wantNoWrite(t, env, before)
		})
	}
	t.Run("update name", func(t *testing.T) {
		if _, err := env.Clientset.CoreV1().Pods("default").Create(t.Context(), podFromJSON(t, minimalPodJSON("named")), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		before := etcdRevision(t, env)
		resp := c.do(t, rawReq{method: http.MethodPut, path: podsPath + "/named", contentType: "application/json", body: minimalPodJSON("other")})
		wantStatusReply(t, resp, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the name of the object (other) does not match the name on the URL (named)")
		wantNoWrite(t, env, before)
	})
}

func TestCreate_invalid(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	long := strings.Repeat("a", 254)
	tests := []struct {
		name, path, body  string
		kind, objName     string
		field             string
		msgs              []string
		wantMissingObject func(t *testing.T)
	}{
		{name: "underscore name", path: podsPath, body: string(minimalPodJSON("Bad_Name")), kind: "Pod", objName: "Bad_Name",
			field: "metadata.name", msgs: []string{`Pod "Bad_Name" is invalid`, "metadata.name", "RFC 1123"}},
		{name: "uppercase name", path: podsPath, body: string(minimalPodJSON("BadName")), kind: "Pod", objName: "BadName",
			field: "metadata.name", msgs: []string{`Pod "BadName" is invalid`, "lowercase"}},
		{name: "too long name", path: cmsPath, body: fmt.Sprintf(`{"metadata":{"name":%q}}`, long), kind: "ConfigMap", objName: long,
			field: "metadata.name", msgs: []string{"metadata.name", "must be no more than 253 characters"}},
		{name: "long service name", path: svcsPath, body: fmt.Sprintf(`{"metadata":{"name":%q},"spec":{"ports":[{"port":80}]}}`, strings.Repeat("s", 64)),
			kind: "Service", objName: strings.Repeat("s", 64), field: "metadata.name", msgs: []string{"metadata.name"}},
		{name: "selector does not match template", path: deploysURL,
			body: `{"metadata":{"name":"sel"},"spec":{"selector":{"matchLabels":{"app":"a"}},"template":{"metadata":{"labels":{"app":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`,
			kind: "Deployment", objName: "sel", field: "spec.template.metadata.labels",
			msgs: []string{`Deployment.apps "sel" is invalid`, "spec.template.metadata.labels", "`selector` does not match template `labels`"}},
		{name: "pod without containers", path: podsPath, body: `{"metadata":{"name":"empty"},"spec":{"containers":[]}}`,
			kind: "Pod", objName: "empty", field: "spec.containers", msgs: []string{"spec.containers: Required value"}},
		{name: "service port 0", path: svcsPath, body: `{"metadata":{"name":"port0"},"spec":{"ports":[{"port":0}]}}`,
			kind: "Service", objName: "port0", field: "spec.ports[0].port", msgs: []string{"spec.ports[0].port"}},
		{name: "configmap over 1MiB", path: cmsPath,
			body: fmt.Sprintf(`{"metadata":{"name":"big"},"data":{"k":%q}}`, strings.Repeat("x", 1<<20+1)),
			kind: "ConfigMap", objName: "big", field: "data", msgs: []string{"data: Too long", "1048576"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			resp := c.post(t, tc.path, "application/json", []byte(tc.body))
			st := wantStatusReply(t, resp, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, tc.msgs...)
			wantCause(t, st, tc.kind, tc.objName, tc.field)
			wantNoWrite(t, env, before)
		})
	}

	// client-go sees the same error, typed.
	t.Run("client-go", func(t *testing.T) {
		_, err := env.Clientset.CoreV1().Pods("default").Create(t.Context(),
			&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "Bad_Name"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
			metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("err = %v, want Invalid", err)
		}
		if got := err.Error(); !strings.HasPrefix(got, `Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"`) {
			t.Errorf("error = %q", got)
		}
		wantPodAbsent(t, env, "default", "Bad_Name")
	})

	// An update that makes a valid object invalid leaves it unchanged.
	t.Run("update", func(t *testing.T) {
		d := &appsv1.Deployment{}
		if err := json.Unmarshal(deploymentJSON("web", ""), d); err != nil {
			t.Fatal(err)
		}
		d, err := env.Clientset.AppsV1().Deployments("default").Create(t.Context(), d, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		bad := d.DeepCopy()
		bad.Spec.Template.Labels = map[string]string{"app": "other"}
		before := etcdRevision(t, env)
		_, err = env.Clientset.AppsV1().Deployments("default").Update(t.Context(), bad, metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.template.metadata.labels") {
			t.Fatalf("err = %v, want Invalid naming spec.template.metadata.labels", err)
		}
		wantNoWrite(t, env, before)
		got, err := env.Clientset.AppsV1().Deployments("default").Get(t.Context(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != d.ResourceVersion || got.Spec.Template.Labels["app"] != "web" {
			t.Errorf("deployment changed: rv %s→%s labels %v", d.ResourceVersion, got.ResourceVersion, got.Spec.Template.Labels)
		}
	})
}

func TestCreate_tooLarge(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	if apiserverMaxBody := 3 * 1024 * 1024; store.DefaultMaxRequestBytes <= apiserverMaxBody {
		t.Fatalf("store.DefaultMaxRequestBytes = %d: etcd must accept every body the HTTP limit lets through", store.DefaultMaxRequestBytes)
	}
	cm := func(name string, n int) []byte {
		return fmt.Appendf(nil, `{"metadata":{"name":%q},"data":{"k":%q}}`, name, strings.Repeat("x", n))
	}

	t.Run("over the HTTP limit", func(t *testing.T) {
		before := etcdRevision(t, env)
		resp := c.post(t, cmsPath, "application/json", cm("huge", 3<<20+1))
		wantStatusReply(t, resp, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, "Request entity too large", "limit is 3145728")
		wantNoWrite(t, env, before)
	})

	t.Run("over the HTTP limit as YAML", func(t *testing.T) {
		before := etcdRevision(t, env)
		body := fmt.Appendf(nil, "metadata:\n  name: huge-yaml\ndata:\n  k: %s\n", strings.Repeat("x", 3<<20))
		resp := c.post(t, cmsPath, "application/yaml", body)
		wantStatusReply(t, resp, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, "limit is 3145728")
		wantNoWrite(t, env, before)
	})

	// Between etcd's default 1.5 MiB and the 3 MiB HTTP limit: kube would
	// fail in etcd; kiln's etcd takes 3.5 MiB, so the ConfigMap's own
	// 1 MiB rule answers, with a 422 that names the field.
	t.Run("2MiB configmap", func(t *testing.T) {
		before := etcdRevision(t, env)
		resp := c.post(t, cmsPath, "application/json", cm("two-mib", 2<<20))
		st := wantStatusReply(t, resp, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `ConfigMap "two-mib" is invalid`, "data: Too long")
		wantCause(t, st, "ConfigMap", "two-mib", "data")
		wantNoWrite(t, env, before)
	})

	// A kind without a size rule under the HTTP limit is stored whole.
	t.Run("2.5MiB source is stored", func(t *testing.T) {
		body := fmt.Appendf(nil, `{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":{"name":"big"},"spec":{"blob":%q}}`, strings.Repeat("y", 5<<19))
		resp := c.post(t, sourcesURL, "application/json", body)
		if resp.code != http.StatusCreated {
			t.Fatalf("code = %d, want 201: %s", resp.code, truncBody(resp.body))
		}
	})

	// A body under the HTTP limit whose stored form is larger than etcd
	// takes: Go's JSON encoding writes '<' as \u003c, six bytes for one.
	// The store refuses it; the client gets a 413 that says so and
	// nothing is written.
	t.Run("stored form over the etcd limit", func(t *testing.T) {
		body := fmt.Appendf(nil, `{"metadata":{"name":"expands"},"spec":{"containers":[{"name":"c","image":"i","args":[%q]}]}}`, strings.Repeat("<", 2<<20))
		before := etcdRevision(t, env)
		resp := c.post(t, podsPath, "application/json", body)
		wantStatusReply(t, resp, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge,
			`Request entity too large: the stored form of pods "expands" is larger than the datastore accepts`)
		wantNoWrite(t, env, before)
		wantPodAbsent(t, env, "default", "expands")
	})

	// The same on an update: the object stays as it was.
	t.Run("update over the etcd limit", func(t *testing.T) {
		pod, err := env.Clientset.CoreV1().Pods("default").Create(t.Context(), podFromJSON(t, minimalPodJSON("grows")), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"x":"y"}},"spec":{"activeDeadlineSeconds":5,"containers":[{"name":"c","args":[%q]}]}}`, strings.Repeat(">", 2<<20))
		before := etcdRevision(t, env)
		resp := c.do(t, rawReq{method: http.MethodPatch, path: podsPath + "/grows", contentType: "application/strategic-merge-patch+json", body: patch})
		wantStatusReply(t, resp, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `Pod "grows" is invalid`, "pod updates may not change fields")

		wantNoWrite(t, env, before)
		got, err := env.Clientset.CoreV1().Pods("default").Get(t.Context(), "grows", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != pod.ResourceVersion {
			t.Errorf("pod changed: rv %s→%s", pod.ResourceVersion, got.ResourceVersion)
		}

		cmObj, err := env.Clientset.CoreV1().ConfigMaps("default").Create(t.Context(),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "grows"}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before = etcdRevision(t, env)
		resp = c.do(t, rawReq{method: http.MethodPatch, path: cmsPath + "/grows", contentType: "application/merge-patch+json",
			body: fmt.Appendf(nil, `{"metadata":{"labels":{"a":"b"}},"data":{"k":%q}}`, strings.Repeat("<", 1<<20-10))})
		// Under the ConfigMap's 1 MiB rule, over etcd's limit once stored.
		wantStatusReply(t, resp, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, "Request entity too large")
		wantNoWrite(t, env, before)
		gotCM, err := env.Clientset.CoreV1().ConfigMaps("default").Get(t.Context(), "grows", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if gotCM.ResourceVersion != cmObj.ResourceVersion || gotCM.Data["k"] != "v" || len(gotCM.Labels) != 0 {
			t.Errorf("configmap changed: %+v", gotCM.ObjectMeta)
		}
	})
}

func TestAuth_errors(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{ExtraTokens: map[string]apiserver.User{"bob-token": {Name: "bob"}}})
	unauth := []struct {
		name string
		r    rawReq
	}{
		{"missing token", rawReq{method: http.MethodGet, path: podsPath, noToken: true}},
		{"wrong token", rawReq{method: http.MethodGet, path: podsPath, token: "not-a-token"}},
		{"missing token on create", rawReq{method: http.MethodPost, path: podsPath, noToken: true, contentType: "application/json", body: minimalPodJSON("anon")}},
		{"missing token on discovery", rawReq{method: http.MethodGet, path: "/api", noToken: true}},
		{"missing token on openapi", rawReq{method: http.MethodGet, path: "/openapi/v2", noToken: true}},
	}
	for _, tc := range unauth {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			wantStatusReply(t, c.do(t, tc.r), http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
			wantNoWrite(t, env, before)
		})
	}
	t.Run("basic auth", func(t *testing.T) {
		hr, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, env.URL+podsPath, nil)
		hr.SetBasicAuth("admin", env.Token)
		resp, err := c.hc.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantStatusReply(t, rawResp{code: resp.StatusCode, header: resp.Header, body: body}, http.StatusUnauthorized, metav1.StatusReasonUnauthorized)
	})

	forbidden := []struct {
		name string
		r    rawReq
		msg  string
	}{
		{"create pods", rawReq{method: http.MethodPost, path: podsPath, token: "bob-token", contentType: "application/json", body: minimalPodJSON("bobs")},
			`pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace "default"`},
		{"list nodes", rawReq{method: http.MethodGet, path: "/api/v1/nodes", token: "bob-token"},
			`User "bob" cannot list resource "nodes" in API group ""`},
		{"delete deployment", rawReq{method: http.MethodDelete, path: deploysURL + "/web", token: "bob-token"},
			`deployments.apps "web" is forbidden: User "bob" cannot delete resource "deployments" in API group "apps" in the namespace "default"`},
		{"pod log", rawReq{method: http.MethodGet, path: podsPath + "/p/log", token: "bob-token"},
			`User "bob" cannot get resource "pods/log" in API group "" in the namespace "default"`},
	}
	for _, tc := range forbidden {
		t.Run("forbidden/"+tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			wantStatusReply(t, c.do(t, tc.r), http.StatusForbidden, metav1.StatusReasonForbidden, tc.msg)
			wantNoWrite(t, env, before)
		})
	}
	t.Run("forbidden/client-go", func(t *testing.T) {
		cfg := rest.CopyConfig(env.RESTConfig)
		cfg.BearerToken = "bob-token"
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cs.CoreV1().Secrets("kube-system").Get(t.Context(), "x", metav1.GetOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `User "bob" cannot get resource "secrets"`) {
			t.Errorf("err = %v, want Forbidden naming bob, get and secrets", err)
		}
		wantPodAbsent(t, env, "default", "bobs")
	})

	for _, p := range []string{"/healthz", "/livez", "/readyz", "/version"} {
		t.Run("open"+p, func(t *testing.T) {
			resp := c.do(t, rawReq{method: http.MethodGet, path: p, noToken: true})
			if resp.code != http.StatusOK {
				t.Errorf("GET %s without a token = %d, want 200: %s", p, resp.code, truncBody(resp.body))
			}
		})
	}
}

func TestWrite_conflictsAndMediaTypes(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	pods := env.Clientset.CoreV1().Pods("default")
	orig, err := pods.Create(t.Context(), podFromJSON(t, minimalPodJSON("web")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := c.post(t, sourcesURL, "application/json", []byte(`{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":{"name":"repo"},"spec":{"url":"https://example.com/r.git"}}`))
	if src.code != http.StatusCreated {
		t.Fatalf("create source = %d: %s", src.code, truncBody(src.body))
	}
	// unchanged says the pod is the one created above.
	unchanged := func(t *testing.T) {
		t.Helper()
		got, err := pods.Get(t.Context(), "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != orig.ResourceVersion || got.UID != orig.UID || len(got.Labels) != 0 {
			t.Errorf("pod changed: rv %s→%s uid %s→%s labels %v", orig.ResourceVersion, got.ResourceVersion, orig.UID, got.UID, got.Labels)
		}
	}
	staleBody := func() []byte {
		p := orig.DeepCopy()
		p.ResourceVersion = "1"
		p.Labels = map[string]string{"stale": "true"}
		b, _ := json.Marshal(p)
		return b
	}

	tests := []struct {
		name   string
		r      rawReq
		code   int
		reason metav1.StatusReason
		msgs   []string
	}{
		{"create with resourceVersion", rawReq{method: http.MethodPost, path: podsPath, contentType: "application/json",
			body: []byte(`{"metadata":{"name":"rv","resourceVersion":"5"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)},
			http.StatusBadRequest, metav1.StatusReasonBadRequest, []string{"resourceVersion should not be set on objects to be created"}},
		{"update with stale resourceVersion", rawReq{method: http.MethodPut, path: podsPath + "/web", contentType: "application/json", body: staleBody()},
			http.StatusConflict, metav1.StatusReasonConflict,
			[]string{`Operation cannot be fulfilled on pods "web": the object has been modified; please apply your changes to the latest version and try again`}},
		{"patch with stale resourceVersion", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/merge-patch+json",
			body: []byte(`{"metadata":{"resourceVersion":"1","labels":{"stale":"true"}}}`)},
			http.StatusConflict, metav1.StatusReasonConflict, []string{"the object has been modified"}},
		{"update with another uid", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/merge-patch+json",
			body: []byte(`{"metadata":{"uid":"00000000-0000-0000-0000-000000000000","labels":{"uid":"x"}}}`)},
			http.StatusConflict, metav1.StatusReasonConflict, []string{"Precondition failed: UID in precondition"}},
		{"create existing name", rawReq{method: http.MethodPost, path: podsPath, contentType: "application/json", body: minimalPodJSON("web")},
			http.StatusConflict, metav1.StatusReasonAlreadyExists, []string{`pods "web" already exists`}},
		{"create in missing namespace", rawReq{method: http.MethodPost, path: "/api/v1/namespaces/nope/pods", contentType: "application/json", body: minimalPodJSON("lost")},
			http.StatusNotFound, metav1.StatusReasonNotFound, []string{`namespaces "nope" not found`}},
		{"update of missing object", rawReq{method: http.MethodPut, path: podsPath + "/ghost", contentType: "application/json", body: minimalPodJSON("ghost")},
			http.StatusNotFound, metav1.StatusReasonNotFound, []string{`pods "ghost" not found`}},
		{"patch of missing object", rawReq{method: http.MethodPatch, path: podsPath + "/ghost", contentType: "application/merge-patch+json", body: []byte(`{}`)},
			http.StatusNotFound, metav1.StatusReasonNotFound, []string{`pods "ghost" not found`}},
		{"create as text/plain", rawReq{method: http.MethodPost, path: podsPath, contentType: "text/plain", body: minimalPodJSON("plain")},
			http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, []string{"application/json", "application/yaml"}},
		{"update as text/plain", rawReq{method: http.MethodPut, path: podsPath + "/web", contentType: "text/plain", body: minimalPodJSON("web")},
			http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, []string{"unknown format"}},
		{"patch as application/json", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/json", body: []byte(`{"metadata":{"labels":{"a":"b"}}}`)},
			http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, []string{"application/merge-patch+json"}},
		{"json patch with bogus op", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/json-patch+json", body: []byte(`[{"op":"bogus"}]`)},
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, []string{"the patch could not be applied", "bogus"}},
		{"json patch that is not a list", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/json-patch+json", body: []byte(`{"op":"add"}`)},
			http.StatusBadRequest, metav1.StatusReasonBadRequest, nil},
		{"json patch test fails", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/json-patch+json",
			body: []byte(`[{"op":"test","path":"/metadata/name","value":"other"},{"op":"add","path":"/metadata/labels","value":{"a":"b"}}]`)},
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, []string{"the patch could not be applied"}},
		{"json patch on missing path", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/json-patch+json",
			body: []byte(`[{"op":"replace","path":"/spec/nope/x","value":1}]`)},
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, []string{"the patch could not be applied"}},
		{"malformed merge patch", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/merge-patch+json", body: []byte(`{"metadata":`)},
			http.StatusBadRequest, metav1.StatusReasonBadRequest, nil},
		{"patch changing the name", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/merge-patch+json", body: []byte(`{"metadata":{"name":"renamed"}}`)},
			http.StatusBadRequest, metav1.StatusReasonBadRequest, []string{"the name of the object (renamed) does not match the name on the URL (web)"}},
		{"strategic merge patch on a source", rawReq{method: http.MethodPatch, path: sourcesURL + "/repo", contentType: "application/strategic-merge-patch+json", body: []byte(`{"spec":{"url":"x"}}`)},
			http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, []string{"strategic merge patch is not supported for sources.gitops.kiln.dev"}},
		{"apply without fieldManager", rawReq{method: http.MethodPatch, path: podsPath + "/web", contentType: "application/apply-patch+yaml", body: []byte("metadata:\n  labels:\n    a: b\n")},
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, []string{"fieldManager: Required value"}},
		{"bad dryRun", rawReq{method: http.MethodPost, path: podsPath + "?dryRun=Some", contentType: "application/json", body: minimalPodJSON("dry")},
			http.StatusBadRequest, metav1.StatusReasonBadRequest, []string{`dryRun must be All, not "Some"`}},
		{"create on a named path", rawReq{method: http.MethodPost, path: podsPath + "/web", contentType: "application/json", body: minimalPodJSON("web")},
			http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, nil},
		{"unknown resource", rawReq{method: http.MethodPost, path: "/api/v1/namespaces/default/widgets", contentType: "application/json", body: []byte(`{}`)},
			http.StatusNotFound, metav1.StatusReasonNotFound, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := etcdRevision(t, env)
			wantStatusReply(t, c.do(t, tc.r), tc.code, tc.reason, tc.msgs...)
			wantNoWrite(t, env, before)
			unchanged(t)
		})
	}
	for _, name := range []string{"rv", "lost", "plain", "dry", "ghost", "renamed"} {
		wantPodAbsent(t, env, "default", name)
	}
	wantPodAbsent(t, env, "nope", "lost")

	// client-go sees the stale write as a Conflict it can retry on.
	t.Run("client-go conflict", func(t *testing.T) {
		p := orig.DeepCopy()
		if _, err := pods.Update(t.Context(), p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("fresh update: %v", err) // an update that changes nothing
		}
		p.ResourceVersion = "2"
		p.Labels = map[string]string{"a": "b"}
		_, err := pods.Update(t.Context(), p, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			t.Fatalf("err = %v, want Conflict", err)
		}
		_, err = pods.Patch(t.Context(), "web", types.JSONPatchType, []byte(`[{"op":"bogus"}]`), metav1.PatchOptions{})
		if err == nil || !strings.Contains(err.Error(), "bogus") {
			t.Errorf("bogus JSON patch err = %v, want one naming the op", err)
		}
		unchanged(t)
	})
}

func TestService_allocationErrors(t *testing.T) {
	env, c := startBadInputEnv(t, testenv.Options{})
	svcs := env.Clientset.CoreV1().Services("default")
	svc := func(name, ip string, nodePort int32) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Port: 80, NodePort: nodePort}}}}
		if nodePort != 0 {
			s.Spec.Type = corev1.ServiceTypeNodePort
		}
		return s
	}
	svcBody := func(name, ip string, nodePort int32) []byte {
		b, _ := json.Marshal(svc(name, ip, nodePort))
		return b
	}

	t.Run("clusterIP outside the service CIDR", func(t *testing.T) {
		for _, ip := range []string{"192.168.1.1", "10.43.0.0", "10.43.255.255", "10.44.0.1", "not-an-ip"} {
			before := etcdRevision(t, env)
			resp := c.post(t, svcsPath, "application/json", svcBody("outside", ip, 0))
			st := wantStatusReply(t, resp, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, `Service "outside" is invalid`, "spec.clusterIP")
			var fields []string
			for _, cause := range st.Details.Causes {
				fields = append(fields, cause.Field)
			}
			if !strings.Contains(strings.Join(fields, ","), "spec.clusterIP") {
				t.Errorf("%s: causes %q name no clusterIP field", ip, fields)
			}
			wantNoWrite(t, env, before)
		}
		before := etcdRevision(t, env)
		st := wantStatusReply(t, c.post(t, svcsPath, "application/json", svcBody("outside", "192.168.1.1", 0)),
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "provided IP is not in the valid range", "10.43.0.0/16")
		wantCause(t, st, "Service", "outside", "spec.clusterIPs[0]")
		wantNoWrite(t, env, before)
		if _, err := svcs.Get(t.Context(), "outside", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("get outside: %v, want NotFound", err)
		}
	})

	t.Run("nodePort outside the range", func(t *testing.T) {
		before := etcdRevision(t, env)
		st := wantStatusReply(t, c.post(t, svcsPath, "application/json", svcBody("np-out", "", 80)),
			http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "30000-32767")
		wantCause(t, st, "Service", "np-out", "spec.ports[0].nodePort")
		wantNoWrite(t, env, before)
	})

	const ip, port = "10.43.7.7", int32(30777)
	first, err := svcs.Create(t.Context(), svc("first", ip, port), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("clusterIP already taken", func(t *testing.T) {
		// 10.43.0.1 is the kubernetes Service's.
		for _, taken := range []string{ip, "10.43.0.1"} {
			before := etcdRevision(t, env)
			resp := c.post(t, svcsPath, "application/json", svcBody("second", taken, 0))
			st := wantStatusReply(t, resp, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid,
				`Service "second" is invalid`, "failed to allocate IP "+taken+": provided IP is already allocated")
			wantCause(t, st, "Service", "second", "spec.clusterIPs[0]")
			wantNoWrite(t, env, before)
		}
	})
	t.Run("nodePort already taken", func(t *testing.T) {
		before := etcdRevision(t, env)
		resp := c.post(t, svcsPath, "application/json", svcBody("second", "", port))
		st := wantStatusReply(t, resp, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, "provided port is already allocated")
		wantCause(t, st, "Service", "second", "spec.ports[0].nodePort")
		wantNoWrite(t, env, before)
	})
	t.Run("update onto a taken nodePort", func(t *testing.T) {
		other, err := svcs.Create(t.Context(), svc("other", "", 0), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := other.DeepCopy()
		other.Spec.Type = corev1.ServiceTypeNodePort
		other.Spec.Ports[0].NodePort = port
		before := etcdRevision(t, env)
		_, err = svcs.Update(t.Context(), other, metav1.UpdateOptions{})
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "provided port is already allocated") {
			t.Fatalf("err = %v, want Invalid: provided port is already allocated", err)
		}
		wantNoWrite(t, env, before)
		got, err := svcs.Get(t.Context(), "other", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != want.ResourceVersion || got.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("service other changed: rv %s→%s type %s", want.ResourceVersion, got.ResourceVersion, got.Spec.Type)
		}
		if err := svcs.Delete(t.Context(), "other", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})

	got, err := svcs.Get(t.Context(), "first", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.ClusterIP != ip || got.Spec.Ports[0].NodePort != port || got.ResourceVersion != first.ResourceVersion {
		t.Errorf("first service lost its allocation: clusterIP %s nodePort %d rv %s→%s", got.Spec.ClusterIP, got.Spec.Ports[0].NodePort, first.ResourceVersion, got.ResourceVersion)
	}

	t.Run("delete frees clusterIP and nodePort", func(t *testing.T) {
		if err := svcs.Delete(t.Context(), "first", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		next, err := svcs.Create(t.Context(), svc("second", ip, port), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("reuse %s:%d after delete: %v", ip, port, err)
		}
		if next.Spec.ClusterIP != ip || next.Spec.Ports[0].NodePort != port {
			t.Errorf("second got %s:%d, want %s:%d", next.Spec.ClusterIP, next.Spec.Ports[0].NodePort, ip, port)
		}
	})
}
