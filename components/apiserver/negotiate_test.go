package apiserver_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/testenv"
)

const (
	acceptProtobuf = "application/vnd.kubernetes.protobuf"
	acceptJSON     = "application/json"
)

// negotiateClient sends raw requests with a chosen Accept header.
type negotiateClient struct {
	env *testenv.Env
	hc  *http.Client
}

func newNegotiateClient(t *testing.T, env *testenv.Env) *negotiateClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(env.CAPEM) {
		t.Fatal("bad CA PEM")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	t.Cleanup(hc.CloseIdleConnections)
	return &negotiateClient{env: env, hc: hc}
}

// do sends one request and returns the status, the Content-Type and the
// body.
func (c *negotiateClient) do(t *testing.T, method, path, accept string, body []byte) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, c.env.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.env.Token)
	req.Header.Set("Content-Type", acceptJSON)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// decodePod reads a pod answer in whichever encoding it came.
func decodePod(t *testing.T, ct string, b []byte) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if ct == acceptProtobuf {
		s := protobuf.NewSerializer(clientgoscheme.Scheme, clientgoscheme.Scheme)
		if _, _, err := s.Decode(b, nil, pod); err != nil {
			t.Fatalf("decode protobuf answer: %v", err)
		}
		return pod
	}
	if err := json.Unmarshal(b, pod); err != nil {
		t.Fatalf("decode JSON answer: %v (%s)", err, b)
	}
	return pod
}

// TestWrite_answerEncoding_followsAccept checks content negotiation of the
// object a write returns: protobuf when the client ranks it first (as
// client-go's typed clients do), JSON otherwise and for kinds without a
// protobuf form; the object is the same either way and the same as a GET
// returns.
func TestWrite_answerEncoding_followsAccept(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	c := newNegotiateClient(t, env)
	tests := []struct {
		name, accept, wantCT string
	}{
		{"client-go default", acceptProtobuf + "," + acceptJSON, acceptProtobuf},
		{"protobuf only", acceptProtobuf, acceptProtobuf},
		{"json", acceptJSON, acceptJSON},
		{"json first", acceptJSON + ", " + acceptProtobuf, acceptJSON},
		{"protobuf ranked lower", acceptProtobuf + ";q=0.5, " + acceptJSON, acceptJSON},
		{"table or json", "application/json;as=Table;v=v1;g=meta.k8s.io, " + acceptJSON, acceptJSON},
		{"anything", "*/*", acceptJSON},
		{"none", "", acceptJSON},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("negotiate-%d", i)
			code, ct, body := c.do(t, http.MethodPost, "/api/v1/namespaces/default/pods", tc.accept, minimalPodJSON(name))
			if code != http.StatusCreated || ct != tc.wantCT {
				t.Fatalf("create: %d %q, want 201 %q: %s", code, ct, tc.wantCT, truncBody(body))
			}
			created := decodePod(t, ct, body)
			if created.ResourceVersion == "" || created.UID == "" || created.Status.Phase != corev1.PodPending {
				t.Fatalf("created pod lacks server fields: rv %q uid %q phase %q", created.ResourceVersion, created.UID, created.Status.Phase)
			}
			// Reads answer JSON whatever the client prefers (writeObject).
			_, getCT, got := c.do(t, http.MethodGet, "/api/v1/namespaces/default/pods/"+name, acceptProtobuf+","+acceptJSON, nil)
			if getCT != acceptJSON {
				t.Errorf("get answered %q, want JSON", getCT)
			}
			stored := decodePod(t, getCT, got)
			if !apiequality.Semantic.DeepEqual(created, stored) {
				t.Errorf("created pod differs from the stored one:\n%+v\n%+v", created, stored)
			}

			stored.Labels = map[string]string{"updated": "yes"}
			put, err := json.Marshal(stored)
			if err != nil {
				t.Fatal(err)
			}
			code, ct, body = c.do(t, http.MethodPut, "/api/v1/namespaces/default/pods/"+name, tc.accept, put)
			if code != http.StatusOK || ct != tc.wantCT {
				t.Fatalf("update: %d %q, want 200 %q: %s", code, ct, tc.wantCT, truncBody(body))
			}
			if updated := decodePod(t, ct, body); updated.Labels["updated"] != "yes" || updated.ResourceVersion == stored.ResourceVersion {
				t.Errorf("update answered labels %v rv %q (was %q)", updated.Labels, updated.ResourceVersion, stored.ResourceVersion)
			}
		})
	}

	t.Run("kind without protobuf form", func(t *testing.T) {
		src := []byte(`{"apiVersion":"gitops.kiln.dev/v1alpha1","kind":"Source","metadata":{"name":"negotiate"},"spec":{}}`)
		code, ct, body := c.do(t, http.MethodPost, "/apis/gitops.kiln.dev/v1alpha1/sources", acceptProtobuf+","+acceptJSON, src)
		if code != http.StatusCreated || ct != acceptJSON {
			t.Fatalf("create source: %d %q, want 201 JSON: %s", code, ct, truncBody(body))
		}
	})

	t.Run("typed client-go with default content types", func(t *testing.T) {
		rc := rest.CopyConfig(env.RESTConfig)
		rc.ContentType = ""
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(minimalPodJSON("negotiate-typed"), &pod); err != nil {
			t.Fatal(err)
		}
		created, err := cs.CoreV1().Pods("default").Create(t.Context(), &pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := env.Clientset.CoreV1().Pods("default").Get(t.Context(), "negotiate-typed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !apiequality.Semantic.DeepEqual(created, got) {
			t.Errorf("created pod differs from the stored one:\n%+v\n%+v", created, got)
		}
	})
}
