package apiserver_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/kubelet"
	"kiln.dev/kiln/components/store"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/components/testenv/hollow"
)

// nodeCert issues a client certificate from ca for user in groups.
func nodeCert(t *testing.T, ca *pki.CA, user string, groups ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueClient(user, groups, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// certConfig is a rest.Config that authenticates with a client
// certificate only.
func certConfig(env *testenv.Env, certPEM, keyPEM []byte) *rest.Config {
	rc := &rest.Config{
		Host:            env.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.CAPEM, CertData: certPEM, KeyData: keyPEM},
		QPS:             1000, Burst: 1000,
	}
	rc.ContentType = "application/json"
	return rc
}

// nodeClient is a clientset acting as system:node:<node>.
func nodeClient(t *testing.T, env *testenv.Env, node string) kubernetes.Interface {
	t.Helper()
	c, k := nodeCert(t, env.CA, apiserver.NodeUserPrefix+node, apiserver.GroupNodes)
	cs, err := kubernetes.NewForConfig(certConfig(env, c, k))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// nodeAuthzFixture is what the node rules are checked against: nodes a
// and b, a pod on each and one unscheduled, and the Secrets and
// ConfigMaps they use.
func nodeAuthzFixture(t *testing.T, env *testenv.Env) {
	t.Helper()
	ctx := t.Context()
	admin := env.Clientset
	if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoordinationV1().Leases("kube-node-lease").Create(ctx,
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "b"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vol-secret", "env-secret", "pull-secret", "b-secret", "unused-secret", "unbound-secret"} {
		if _, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
			StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"proj-cm", "envfrom-cm", "b-cm", "unused-cm"} {
		if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name},
			Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	podA := nodePod("pod-a", "a")
	podA.Spec.Volumes = []corev1.Volume{
		{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "vol-secret"}}},
		{Name: "p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj-cm"}}},
		}}}},
	}
	podA.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "E", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env-secret"}, Key: "k"}}}}
	podA.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "envfrom-cm"}}}}
	podA.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull-secret"}}
	podB := nodePod("pod-b", "b")
	podB.Spec.Volumes = []corev1.Volume{
		{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "b-secret"}}},
		{Name: "c", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "b-cm"}}}},
	}
	unbound := nodePod("pod-unbound", "")
	unbound.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "unbound-secret"}}}}
	for _, p := range []*corev1.Pod{podA, podB, unbound} {
		if _, err := admin.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func nodePod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
	}
}

// TestServer_nodeAuthorizer: a node's client certificate reaches its own
// Node and Lease, its pods and what they use, and read-only Services and
// endpoints; every other request is 403 with kube's message, as
// Kubernetes's Node authorizer and NodeRestriction (narrowed by issue 9).
func TestServer_nodeAuthorizer(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	nodeAuthzFixture(t, env)
	a := nodeClient(t, env, "a")
	b := nodeClient(t, env, "b")
	const ns, leaseNS = "default", "kube-node-lease"
	type want int
	const (
		allowed want = iota
		forbidden
		notFound
	)
	statusPatch := []byte(`{"status":{"phase":"Running"}}`)
	getSecret := func(cs kubernetes.Interface, name string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}
	getCM := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := a.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			return err
		}
	}
	listPods := func(selector string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := a.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: selector})
			return err
		}
	}
	cases := []struct {
		name string
		do   func(ctx context.Context) error
		want want
	}{
		// Nodes: read all, write only its own (the create checked in the
		// body), and not what kube's NodeRestriction keeps from nodes.
		{"register with a pod CIDR", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"},
				Spec: corev1.NodeSpec{PodCIDR: "10.42.9.0/24"}}, metav1.CreateOptions{})
			return err
		}, forbidden},
		{"register with a reserved label", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a",
				Labels: map[string]string{"node-restriction.kubernetes.io/trusted": "yes"}}}, metav1.CreateOptions{})
			return err
		}, forbidden},
		{"create own node", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
			return err
		}, allowed},
		{"create another node", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
			return err
		}, forbidden},
		{"get another node", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Get(ctx, "b", metav1.GetOptions{})
			return err
		}, allowed},
		{"list nodes", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			return err
		}, allowed},
		{"update own node status", func(ctx context.Context) error {
			n, err := a.CoreV1().Nodes().Get(ctx, "a", metav1.GetOptions{})
			if err != nil {
				return err
			}
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
			_, err = a.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
			return err
		}, allowed},
		{"patch own node", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}, allowed},
		{"label own node in node.kubernetes.io", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, []byte(`{"metadata":{"labels":{"node.kubernetes.io/pool":"x"}}}`), metav1.PatchOptions{})
			return err
		}, allowed},
		{"label own node as a control plane", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, []byte(`{"metadata":{"labels":{"node-role.kubernetes.io/control-plane":""}}}`), metav1.PatchOptions{})
			return err
		}, forbidden},
		{"taint own node", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"taints":[{"key":"x","effect":"NoSchedule"}]}}`), metav1.PatchOptions{})
			return err
		}, forbidden},
		{"set own pod CIDR", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"podCIDR":"10.42.9.0/24","podCIDRs":["10.42.9.0/24"]}}`), metav1.PatchOptions{})
			return err
		}, forbidden},
		{"patch another node's status", func(ctx context.Context) error {
			_, err := a.CoreV1().Nodes().Patch(ctx, "b", types.MergePatchType, []byte(`{"status":{"phase":"Running"}}`), metav1.PatchOptions{}, "status")
			return err
		}, forbidden},
		{"delete another node", func(ctx context.Context) error {
			return a.CoreV1().Nodes().Delete(ctx, "b", metav1.DeleteOptions{})
		}, forbidden},
		{"node proxy", func(ctx context.Context) error {
			return a.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/a/proxy").Do(ctx).Error()
		}, forbidden},

		// Leases: its own only, in kube-node-lease.
		{"create own lease", func(ctx context.Context) error {
			_, err := a.CoordinationV1().Leases(leaseNS).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, metav1.CreateOptions{})
			return err
		}, allowed},
		{"create another node's lease", func(ctx context.Context) error {
			_, err := a.CoordinationV1().Leases(leaseNS).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
			return err
		}, forbidden},
		{"update own lease", func(ctx context.Context) error {
			l, err := a.CoordinationV1().Leases(leaseNS).Get(ctx, "a", metav1.GetOptions{})
			if err != nil {
				return err
			}
			now := metav1.NowMicro()
			l.Spec.RenewTime = &now
			_, err = a.CoordinationV1().Leases(leaseNS).Update(ctx, l, metav1.UpdateOptions{})
			return err
		}, allowed},
		{"get another node's lease", func(ctx context.Context) error {
			_, err := a.CoordinationV1().Leases(leaseNS).Get(ctx, "b", metav1.GetOptions{})
			return err
		}, forbidden},
		{"list leases", func(ctx context.Context) error {
			_, err := a.CoordinationV1().Leases(leaseNS).List(ctx, metav1.ListOptions{})
			return err
		}, forbidden},
		{"list own lease by name", func(ctx context.Context) error {
			_, err := a.CoordinationV1().Leases(leaseNS).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=a"})
			return err
		}, allowed},
		{"lease outside kube-node-lease", func(ctx context.Context) error {
			_, err := a.CoordinationV1().Leases(ns).Get(ctx, "a", metav1.GetOptions{})
			return err
		}, forbidden},

		// Pods: its own, listed by spec.nodeName.
		{"list own pods by spec.nodeName", listPods("spec.nodeName=a"), allowed},
		{"list pods", listPods(""), forbidden},
		{"list another node's pods", listPods("spec.nodeName=b"), forbidden},
		{"watch own pods", func(ctx context.Context) error {
			w, err := a.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=a"})
			if err == nil {
				w.Stop()
			}
			return err
		}, allowed},
		{"watch pods", func(ctx context.Context) error {
			w, err := a.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		}, forbidden},
		{"get own pod", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Get(ctx, "pod-a", metav1.GetOptions{})
			return err
		}, allowed},
		{"get another node's pod", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Get(ctx, "pod-b", metav1.GetOptions{})
			return err
		}, forbidden},
		{"get an unscheduled pod", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Get(ctx, "pod-unbound", metav1.GetOptions{})
			return err
		}, forbidden},
		{"get a missing pod", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Get(ctx, "nope", metav1.GetOptions{})
			return err
		}, notFound},
		{"patch own pod status", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Patch(ctx, "pod-a", types.StrategicMergePatchType, statusPatch, metav1.PatchOptions{}, "status")
			return err
		}, allowed},
		{"update own pod status", func(ctx context.Context) error {
			p, err := a.CoreV1().Pods(ns).Get(ctx, "pod-a", metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Status.Message = "hello"
			_, err = a.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		}, allowed},
		{"patch another node's pod status", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Patch(ctx, "pod-b", types.StrategicMergePatchType, statusPatch, metav1.PatchOptions{}, "status")
			return err
		}, forbidden},
		{"patch own pod spec", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Patch(ctx, "pod-a", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		}, forbidden},
		{"create a pod", func(ctx context.Context) error {
			_, err := a.CoreV1().Pods(ns).Create(ctx, nodePod("mirror", "a"), metav1.CreateOptions{})
			return err
		}, forbidden},
		{"own pod's log", func(ctx context.Context) error {
			return a.CoreV1().Pods(ns).GetLogs("pod-a", &corev1.PodLogOptions{}).Do(ctx).Error()
		}, forbidden},
		{"evict own pod", func(ctx context.Context) error {
			return a.CoreV1().Pods(ns).EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: "pod-a", Namespace: ns}})
		}, forbidden},
		{"delete another node's pod", func(ctx context.Context) error {
			return a.CoreV1().Pods(ns).Delete(ctx, "pod-b", metav1.DeleteOptions{})
		}, forbidden},

		// Secrets and ConfigMaps: those its pods use, each way a pod can.
		{"secret of own pod's volume", getSecret(a, "vol-secret"), allowed},
		{"secret of own pod's env", getSecret(a, "env-secret"), allowed},
		{"own pod's image pull secret", getSecret(a, "pull-secret"), allowed},
		{"configmap of own pod's projected volume", getCM("proj-cm"), allowed},
		{"configmap of own pod's envFrom", getCM("envfrom-cm"), allowed},
		{"secret only another node's pod uses", getSecret(a, "b-secret"), forbidden},
		{"the other node reads its own", getSecret(b, "b-secret"), allowed},
		{"configmap only another node's pod uses", getCM("b-cm"), forbidden},
		{"secret no pod uses", getSecret(a, "unused-secret"), forbidden},
		{"secret of an unscheduled pod", getSecret(a, "unbound-secret"), forbidden},
		{"list secrets", func(ctx context.Context) error {
			_, err := a.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		}, forbidden},
		{"list secrets everywhere", func(ctx context.Context) error {
			_, err := a.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=vol-secret"})
			return err
		}, forbidden},
		{"list own pod's secret by name", func(ctx context.Context) error {
			l, err := a.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=vol-secret"})
			if err == nil && len(l.Items) != 1 {
				return fmt.Errorf("listed %d secrets, want 1", len(l.Items))
			}
			return err
		}, allowed},
		{"list another node's secret by name", func(ctx context.Context) error {
			_, err := a.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=b-secret"})
			return err
		}, forbidden},
		{"watch own pod's configmap by name", func(ctx context.Context) error {
			w, err := a.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=envfrom-cm"})
			if err == nil {
				w.Stop()
			}
			return err
		}, allowed},
		{"update own pod's secret", func(ctx context.Context) error {
			_, err := a.CoreV1().Secrets(ns).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "vol-secret"}}, metav1.UpdateOptions{})
			return err
		}, forbidden},
		{"create a configmap", func(ctx context.Context) error {
			_, err := a.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
			return err
		}, forbidden},

		// Services and endpoints: read.
		{"list services", func(ctx context.Context) error {
			_, err := a.CoreV1().Services("").List(ctx, metav1.ListOptions{})
			return err
		}, allowed},
		{"get the kubernetes service", func(ctx context.Context) error {
			_, err := a.CoreV1().Services(ns).Get(ctx, "kubernetes", metav1.GetOptions{})
			return err
		}, allowed},
		{"list endpointslices", func(ctx context.Context) error {
			_, err := a.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
			return err
		}, allowed},
		{"list endpoints", func(ctx context.Context) error {
			_, err := a.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
			return err
		}, allowed},
		{"create a service", func(ctx context.Context) error {
			_, err := a.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "x"},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
			return err
		}, forbidden},

		// Events: write.
		{"create an event", func(ctx context.Context) error {
			_, err := a.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1"},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "pod-a"}, Reason: "Started", Type: "Normal"}, metav1.CreateOptions{})
			return err
		}, allowed},
		{"create an events.k8s.io event", func(ctx context.Context) error {
			_, err := a.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e2"},
				EventTime: metav1.NowMicro(), ReportingController: "kubelet", ReportingInstance: "a", Action: "Start", Reason: "Started", Type: "Normal",
				Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "pod-a"}}, metav1.CreateOptions{})
			return err
		}, allowed},
		{"list events", func(ctx context.Context) error {
			_, err := a.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			return err
		}, forbidden},

		// Reviews the kubelet's log server sends.
		{"token review", func(ctx context.Context) error {
			_, err := a.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "x"}}, metav1.CreateOptions{})
			return err
		}, allowed},
		{"subject access review", func(ctx context.Context) error {
			_, err := a.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: "admin", ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: "get", Resource: "nodes", Subresource: "proxy", Name: "a"}}}, metav1.CreateOptions{})
			return err
		}, allowed},

		// Everything else.
		{"list namespaces", func(ctx context.Context) error {
			_, err := a.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			return err
		}, forbidden},
		{"list deployments", func(ctx context.Context) error {
			_, err := a.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			return err
		}, forbidden},
		{"bind a pod", func(ctx context.Context) error {
			return a.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "pod-unbound"},
				Target: corev1.ObjectReference{Kind: "Node", Name: "a"}}, metav1.CreateOptions{})
		}, forbidden},
		{"discovery", func(ctx context.Context) error {
			_, _, err := a.Discovery().ServerGroupsAndResources()
			return err
		}, allowed},
		{"version", func(ctx context.Context) error {
			_, err := a.Discovery().ServerVersion()
			return err
		}, allowed},

		// Last: a node deletes its own pod, and its Secrets close.
		{"delete own pod", func(ctx context.Context) error {
			return a.CoreV1().Pods(ns).Delete(ctx, "pod-a", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}, allowed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do(t.Context())
			switch tc.want {
			case allowed:
				if err != nil {
					t.Errorf("want allowed, got %v", err)
				}
			case forbidden:
				if !apierrors.IsForbidden(err) {
					t.Errorf("want 403, got %v", err)
				}
			case notFound:
				if !apierrors.IsNotFound(err) {
					t.Errorf("want 404, got %v", err)
				}
			}
		})
	}

	// kube's message names the user, verb, resource and namespace.
	_, err := a.CoreV1().Secrets(ns).Get(t.Context(), "b-secret", metav1.GetOptions{})
	if want := `secrets "b-secret" is forbidden: User "system:node:a" cannot get resource "secrets" in API group "" in the namespace "default"`; err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
	// With pod-a gone (in the graph too), its Secrets are closed.
	eventually(t, func() error {
		if _, err := a.CoreV1().Secrets(ns).Get(t.Context(), "vol-secret", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			return fmt.Errorf("vol-secret after its pod went: %v, want 403", err)
		}
		return nil
	})
}

// eventually polls fn until it returns nil or 10 s pass.
func eventually(t *testing.T, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServer_nodeAuthorizer_freshPod: a kubelet may read a Secret as soon
// as it sees its pod bound, before the authorizer's graph has followed:
// the authorizer asks the store on a miss.
func TestServer_nodeAuthorizer_freshPod(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	a := nodeClient(t, env, "a")
	// Start the graph, which follows pods from then on.
	if _, err := a.CoreV1().Secrets("default").Get(ctx, "none", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("before: %v, want 403", err)
	}
	for i := range 20 {
		name := fmt.Sprintf("fresh-%d", i)
		if _, err := env.Clientset.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := nodePod(name, "a")
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name}}}}
		if _, err := env.Clientset.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
			t.Fatalf("secret of a pod just bound: %v", err)
		}
		if _, err := a.CoreV1().Pods("default").Patch(ctx, name, types.StrategicMergePatchType, []byte(`{"status":{"phase":"Running"}}`), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatalf("status of a pod just bound: %v", err)
		}
	}
}

// TestServer_nodeAuthorizer_badNodeNames: a user in system:nodes whose
// name is not system:node:<node> may do nothing, and a node's name does
// not make a user outside system:nodes a node.
func TestServer_nodeAuthorizer_badNodeNames(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	for _, u := range []struct{ name, group string }{{"mallory", apiserver.GroupNodes}, {"system:node:", apiserver.GroupNodes}, {"system:node:a", "other"}} {
		c, k := nodeCert(t, env.CA, u.name, u.group)
		cs, err := kubernetes.NewForConfig(certConfig(env, c, k))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("%s in %s: list nodes: %v, want 403", u.name, u.group, err)
		}
	}
}

// TestServer_clientCertificates: a certificate from the cluster CA
// authenticates as CN in groups O, for the API and Config.Extra alike; one
// from another CA, or none, is 401 (not a failed handshake); a bad bearer
// token beside a good certificate still authenticates by the certificate.
func TestServer_clientCertificates(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := apiserver.UserFrom(r.Context())
		fmt.Fprintf(w, "user=%s groups=%v ok=%v", u.Name, u.Groups, ok)
	})
	env := testenv.Start(t, testenv.Options{Extra: map[string]http.Handler{"/echo": echo}})
	goodCert, goodKey := nodeCert(t, env.CA, "system:node:a", apiserver.GroupNodes)
	other, err := pki.EnsureCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	badCert, badKey := nodeCert(t, other, "system:node:a", apiserver.GroupNodes)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(env.CAPEM)
	client := func(certPEM, keyPEM []byte) *http.Client {
		cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
	}
	get := func(c *http.Client, path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, env.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good, bad, none := client(goodCert, goodKey), client(badCert, badKey), client(nil, nil)
	for i := range 3 { // the verdict is cached per connection; ask again on it
		if code, body := get(good, "/api/v1/nodes", ""); code != http.StatusOK {
			t.Errorf("cluster CA cert (request %d): %d %s", i, code, body)
		}
	}
	if code, body := get(good, "/api/v1/nodes", "not-a-token"); code != http.StatusOK {
		t.Errorf("cluster CA cert and a bad token: %d %s", code, body)
	}
	if code, body := get(good, "/api/v1/namespaces", env.Token); code != http.StatusOK {
		t.Errorf("cluster CA cert and the admin token (the token wins): %d %s", code, body)
	}
	if code, body := get(bad, "/api/v1/nodes", ""); code != http.StatusUnauthorized {
		t.Errorf("another CA's cert: %d %s, want 401", code, body)
	}
	if code, body := get(none, "/api/v1/nodes", ""); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d %s, want 401", code, body)
	}
	if code, body := get(good, "/echo", ""); code != http.StatusOK || body != "user=system:node:a groups=[system:nodes] ok=true" {
		t.Errorf("extra handler with a cert: %d %q", code, body)
	}
	if code, _ := get(bad, "/echo", ""); code != http.StatusUnauthorized {
		t.Errorf("extra handler with another CA's cert: %d, want 401", code)
	}

	// Who the server says the certificate is.
	cs, err := kubernetes.NewForConfig(certConfig(env, goodCert, goodKey))
	if err != nil {
		t.Fatal(err)
	}
	ssr, err := cs.AuthenticationV1().SelfSubjectReviews().Create(t.Context(), &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ui := ssr.Status.UserInfo; ui.Username != "system:node:a" || len(ui.Groups) != 1 || ui.Groups[0] != apiserver.GroupNodes {
		t.Errorf("whoami: %+v", ui)
	}
}

// TestServer_cacerts: GET /cacerts answers the CA certificate without
// credentials, so an agent can pin it before it sends its token; a
// server without one answers 404.
func TestServer_cacerts(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(env.CAPEM)
	// An agent reads it before it trusts the server.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // what a joining agent does before it pins the CA
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, env.URL+"/cacerts", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(env.CAPEM) || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Errorf("/cacerts: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	st, err := store.New(store.Config{DataDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := apiserver.New(apiserver.Config{Store: st, TLS: &tls.Certificate{}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/cacerts", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/cacerts without a CA: %d, want 404", rec.Code)
	}
}

// TestServer_nodeKubectl: the real kubectl with a node's kubeconfig
// (client-certificate-data) lists the node's pods and is refused Secrets
// with kube's message.
func TestServer_nodeKubectl(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	nodeAuthzFixture(t, env)
	certPEM, keyPEM := nodeCert(t, env.CA, "system:node:a", apiserver.GroupNodes)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kiln"] = &clientcmdapi.Cluster{Server: env.URL, CertificateAuthorityData: env.CAPEM}
	kc.AuthInfos["node"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	kc.Contexts["node"] = &clientcmdapi.Context{Cluster: "kiln", AuthInfo: "node", Namespace: "default"}
	kc.CurrentContext = "node"
	path := filepath.Join(t.TempDir(), "node.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := kubectl(t, env, "--kubeconfig", path, "get", "pods", "-A", "--field-selector", "spec.nodeName=a", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "pod/pod-a" {
		t.Errorf("kubectl get pods --field-selector spec.nodeName=a: %q, want pod/pod-a", out)
	}
	_, stderr, err := kubectlRun(t, env, "--kubeconfig", path, "get", "secrets")
	want := `Error from server (Forbidden): secrets is forbidden: User "system:node:a" cannot list resource "secrets" in API group "" in the namespace "default"`
	if err == nil || strings.TrimSpace(stderr) != want {
		t.Errorf("kubectl get secrets: err %v, stderr %q\nwant %q", err, stderr, want)
	}
}

// TestServer_nodeAuthorizer_kubelet: kiln's own kubelet (on a simulated
// runtime) does its whole job with nothing but its node's certificate:
// registers and heartbeats its Node, runs a pod whose environment comes
// from a Secret and a ConfigMap, reports its status, and removes it when
// it is deleted.
func TestServer_nodeAuthorizer_kubelet(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	nodes := hollow.Start(t, env, hollow.Options{Nodes: 1, NamePrefix: "certnode", Kubelet: func(cfg *kubelet.Config) {
		certPEM, keyPEM := nodeCert(t, env.CA, apiserver.NodeUserPrefix+cfg.NodeName, apiserver.GroupNodes)
		cs, err := kubernetes.NewForConfig(certConfig(env, certPEM, keyPEM))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Client = cs
	}})
	node := nodes[0].Name
	if _, err := env.Clientset.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-secret"},
		StringData: map[string]string{"password": "s3cret"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "app-config"},
		Data: map[string]string{"MODE": "prod"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := nodePod("app", node)
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "app-secret"}, Key: "password"}}}}
	pod.Spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: "app-config"}}}}
	if _, err := env.Clientset.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		p, err := env.Clientset.CoreV1().Pods("default").Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("pod phase %q, conditions %+v", p.Status.Phase, p.Status.Conditions)
		}
		return nil
	})
	// The kubelet read both with the node's credentials.
	running, err := env.Clientset.CoreV1().Pods("default").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	configs := nodes[0].Runtime.Configs(string(running.UID), "app")
	if len(configs) == 0 {
		t.Fatal("no container created")
	}
	got := map[string]string{}
	for _, kv := range configs[0].Config.Env {
		got[kv.Key] = kv.Value
	}
	if got["PASSWORD"] != "s3cret" || got["MODE"] != "prod" {
		t.Errorf("container env %v: want PASSWORD from the Secret and MODE from the ConfigMap", got)
	}
	// The lease is the node's own.
	if _, err := env.Clientset.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{}); err != nil {
		t.Errorf("node lease: %v", err)
	}
	if err := env.Clientset.CoreV1().Pods("default").Delete(ctx, "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		_, err := env.Clientset.CoreV1().Pods("default").Get(ctx, "app", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod not removed by its kubelet: %v", err)
		}
		return nil
	})
}
