package apiserver_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"kiln.dev/kiln/components/testenv"
)

// fuzzTargets are the collections FuzzCreateBody posts to: typed kinds
// with validation and allocation, and kiln's unstructured Source.
var fuzzTargets = []string{
	"/api/v1/namespaces/default/pods",
	"/apis/apps/v1/namespaces/default/deployments",
	"/api/v1/namespaces/default/configmaps",
	"/api/v1/namespaces/default/services",
	"/apis/gitops.kiln.dev/v1alpha1/sources",
	"/api/v1/namespaces",
}

var fuzzContentTypes = []string{
	"application/json",
	"application/yaml",
	"application/vnd.kubernetes.protobuf",
	"",
	"application/json; charset=utf-8",
	"text/plain",
}

// fuzzSeed is one FuzzCreateBody input: indexes into fuzzTargets and
// fuzzContentTypes, a mode byte (fieldValidation, dryRun) and the body.
type fuzzSeed struct {
	target, ct, mode uint8
	body             string
}

// FuzzCreateBody posts arbitrary bodies to the create endpoints through the
// server's handler. Whatever the body, the answer is a 2xx with an object
// or a 4xx Status: never a 5xx, never a panic (STYLE.md §3, RELIABILITY.md
// promise 3).
//
//	go test -run '^$' -fuzz FuzzCreateBody -fuzztime 60s ./components/apiserver/
func FuzzCreateBody(f *testing.F) {
	env := testenv.Start(f, testenv.Options{})
	h := env.Server.Handler()

	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"fz-"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`
	podYAML := "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: fz-\nspec:\n  containers:\n  - name: c\n    image: busybox\n"
	deploy := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"generateName":"fz-"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"nginx","imagePullPolicyy":"x"}]}}}}`
	deployYAML := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  generateName: fz-\nspec:\n  selector:\n    matchLabels: {a: b}\n  template:\n    metadata:\n      labels: {a: b}\n    spec:\n      containers: [{name: c, image: nginx}]\n"
	svc := `{"metadata":{"generateName":"fz-"},"spec":{"type":"NodePort","clusterIP":"10.43.9.9","ports":[{"port":80,"nodePort":30999}]}}`
	source := `{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":{"generateName":"fz-"},"spec":{"url":"https://example.com/r.git"}}`
	seeds := []fuzzSeed{
		{0, 0, 0, pod},
		{0, 1, 1, podYAML},
		{1, 0, 2, deploy},
		{1, 1, 0, deployYAML},
		{2, 0, 0, `{"metadata":{"generateName":"fz-"},"data":{"k":"v"},"binaryData":{"b":"AAE="}}`},
		{3, 0, 0, svc},
		{4, 0, 0, source},
		{5, 0, 0, `{"metadata":{"generateName":"fz-"}}`},
		// Broken variants.
		{0, 0, 0, pod[:len(pod)/2]},
		{0, 1, 0, podYAML[:len(podYAML)-10] + "\t: ["},
		{0, 0, 0, "[" + pod + "]"},
		{0, 0, 0, ""},
		{0, 0, 0, "null"},
		{0, 1, 0, "---\n"},
		{0, 0, 0, `{"metadata":{"name":"a","name":"b"}}`},
		{0, 0, 1, `{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":"80"}]}]}}`},
		{0, 0, 0, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}`},
		{0, 0, 0, `{"metadata":{"name":"x","resourceVersion":"3"}}`},
		{0, 0, 0, `{"metadata":{"name":"x","namespace":"other"}}`},
		{0, 0, 0, `{"metadata":{"name":"x","creationTimestamp":"yesterday"}}`},
		{0, 0, 0, `{"spec":{"containers":[{"resources":{"limits":{"cpu":"lots"}}}]}}`},
		{1, 0, 0, `{"spec":{"replicas":-1,"selector":{"matchExpressions":[{"key":"a","operator":"Bogus"}]}}}`},
		{3, 0, 0, `{"metadata":{"name":"x"},"spec":{"clusterIP":"::1","ports":[{"port":70000,"targetPort":"x y"}]}}`},
		{4, 0, 0, `{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":"nope"}`},
		{4, 0, 0, `{"metadata":{"name":"x","labels":{"a":1}},"status":[]}`},
		{5, 1, 0, "a: &a [*a, *a]\nb: *a\n"},
		{0, 1, 0, "a: &a [\"x\",\"x\"]\nb: &b [*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b]\nd: [*c,*c,*c,*c]\n"},
		{0, 0, 0, strings.Repeat("[", 10000)},
		{0, 0, 0, `{"metadata":` + strings.Repeat(`{"a":`, 5000) + `1` + strings.Repeat(`}`, 5001)},
		{0, 2, 0, "k8s\x00"},
		{0, 2, 0, "k8s\x00\x0a\x0f\x0a\x02v1\x12\x03Pod"},
		{0, 2, 0, "k8s\x00\xff\xff\xff\xff\x0f"},
		{0, 5, 0, pod},
	}
	for _, gvkObj := range []runtime.Object{
		&corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{GenerateName: "fz-"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}},
		&corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: metav1.ObjectMeta{GenerateName: "fz-"}},
	} {
		b := protobufBody(f, gvkObj)
		target := uint8(0)
		if _, ok := gvkObj.(*corev1.ConfigMap); ok {
			target = 2
		}
		seeds = append(seeds, fuzzSeed{target, 2, 0, string(b)}, fuzzSeed{target, 2, 0, string(b[:len(b)-3])})
	}
	for _, s := range seeds {
		f.Add(s.target, s.ct, s.mode, []byte(s.body))
	}

	f.Fuzz(func(t *testing.T, target, ct, mode uint8, body []byte) {
		path := fuzzTargets[int(target)%len(fuzzTargets)]
		q := []string{"fieldValidation=" + []string{"Strict", "Warn", "Ignore"}[int(mode)%3]}
		// Most creates are dry runs, so the store does not fill up (node
		// ports run out after 2,768 services); admission runs either way.
		if mode&0x10 == 0 || strings.HasSuffix(path, "/services") {
			q = append(q, "dryRun=All")
		}
		r := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path+"?"+strings.Join(q, "&"), bytes.NewReader(body))
		if c := fuzzContentTypes[int(ct)%len(fuzzContentTypes)]; c != "" {
			r.Header.Set("Content-Type", c)
		}
		r.Header.Set("Authorization", "Bearer "+env.Token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)

		code := rec.Code
		if code >= 500 {
			t.Fatalf("POST %s = %d: %s", r.URL, code, truncBody(rec.Body.Bytes()))
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("Content-Type = %q", rec.Header().Get("Content-Type"))
		}
		if code >= 200 && code < 300 {
			var obj metav1.PartialObjectMetadata
			if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil || obj.Kind == "" || obj.Kind == "Status" {
				t.Fatalf("POST %s = %d with no object (%v): %s", r.URL, code, err, truncBody(rec.Body.Bytes()))
			}
			return
		}
		if code < 400 {
			t.Fatalf("POST %s = %d: want 2xx or 4xx", r.URL, code)
		}
		var st metav1.Status
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("POST %s = %d, body is not a Status: %v: %s", r.URL, code, err, truncBody(rec.Body.Bytes()))
		}
		if st.Kind != "Status" || int(st.Code) != code || st.Reason == "" || st.Message == "" || st.Status != metav1.StatusFailure {
			t.Fatalf("POST %s = %d, incomplete Status: %s", r.URL, code, truncBody(rec.Body.Bytes()))
		}
	})
}

// protobufBody encodes obj as kubectl and client-go send it.
func protobufBody(tb testing.TB, obj runtime.Object) []byte {
	tb.Helper()
	codecs := serializer.NewCodecFactory(clientgoscheme.Scheme)
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		tb.Fatal("no protobuf serializer")
	}
	var b bytes.Buffer
	if err := info.Serializer.Encode(obj, &b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}
