package kubelet_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/kubelet/simulated"
	"kiln.dev/kiln/components/testenv"
)

// TestKubelet_serviceAccountTokenVolume: a projected serviceAccountToken
// source holds a token of the pod's service account, bound to the pod,
// which the kubelet gets with its own node credentials (the node
// authorizer's path), and rewrites with a fresh one before it expires.
func TestKubelet_serviceAccountTokenVolume(t *testing.T) {
	c := startCluster(t)
	ctx := t.Context()
	const name = "node-sat"
	certPEM, keyPEM, err := c.ca.IssueClient(apiserver.NodeUserPrefix+name, []string{apiserver.GroupNodes}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	nodeCS, err := kubernetes.NewForConfig(&rest.Config{Host: c.URL, QPS: 1000, Burst: 1000,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.CAPEM, CertData: certPEM, KeyData: keyPEM}})
	if err != nil {
		t.Fatal(err)
	}
	n := startKubelet(t, c, name, simulated.New(simulated.Config{SandboxIP: "127.0.0.1"}), "", func(cfg *kubelet.Config) {
		cfg.Client = nodeCS
		cfg.ResyncPeriod = 300 * time.Millisecond
	})
	eventually(t, "node "+name+" ready", func() bool {
		_, err := c.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		return err == nil
	})
	if _, err := c.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := newPod("sat", name, nil, corev1.Container{Name: "app", Image: "example.com/app:v1",
		VolumeMounts: []corev1.VolumeMount{{Name: "api", MountPath: "/var/run/secrets/tokens"}}})
	p.Spec.ServiceAccountName = "robot"
	p.Spec.Volumes = []corev1.Volume{{Name: "api", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: new(int64(600))}}},
	}}}}
	pod := c.createPod(t, p)
	cfg := running(t, c, n, pod, "app")
	dir := mountAt(t, cfg, "/var/run/secrets/tokens").HostPath
	read := func() string {
		b, err := os.ReadFile(filepath.Join(dir, "token"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	token := read()
	review, err := c.Clientset.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:"+ns+":robot" {
		t.Fatalf("the volume's token %q reviews as %+v", token, review.Status)
	}
	// Rewrites within 80% of its life keep the same token.
	time.Sleep(time.Second)
	if again := read(); again != token {
		t.Error("the token was replaced long before 80% of its life")
	}
	if !strings.Contains(token, ".") {
		t.Errorf("token %q is not a JWT", token)
	}
}

// TestKubelet_kubeAPIAccessVolume: with the API server mounting service
// account tokens, a pod's containers find token, ca.crt and namespace in
// /var/run/secrets/kubernetes.io/serviceaccount, as in-cluster clients
// expect; a pod whose service account does not exist yet waits for it.
func TestKubelet_kubeAPIAccessVolume(t *testing.T) {
	c := startClusterWith(t, testenv.Options{MountServiceAccountTokens: true})
	ctx := t.Context()
	n := simNode(t, c, "node-api")
	const caPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	if _, err := c.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data: map[string]string{"ca.crt": caPEM}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No ServiceAccount "default" yet: the pod waits in ContainerCreating.
	pod := c.createPod(t, newPod("api", n.name, nil))
	c.waitPod(t, ns, "api", "a FailedMount for the missing account", func(p *corev1.Pod) bool {
		evs, err := c.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=api,reason=FailedMount"})
		return err == nil && len(evs.Items) > 0 && strings.Contains(evs.Items[0].Message, `serviceaccounts "default" not found`)
	})
	if _, err := c.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg := running(t, c, n, pod, "app")
	m := mountAt(t, cfg, "/var/run/secrets/kubernetes.io/serviceaccount")
	if !m.ReadOnly {
		t.Errorf("the service account mount is read-write: %+v", m)
	}
	dir := m.HostPath
	files := map[string]string{}
	for _, f := range []string{"token", "ca.crt", "namespace"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		files[f] = string(b)
	}
	if files["ca.crt"] != caPEM || files["namespace"] != ns {
		t.Errorf("ca.crt %q, namespace %q", files["ca.crt"], files["namespace"])
	}
	review, err := c.Clientset.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: files["token"]}}, metav1.CreateOptions{})
	if err != nil || !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:"+ns+":default" {
		t.Fatalf("the mounted token reviews as %+v, %v", review, err)
	}
}
