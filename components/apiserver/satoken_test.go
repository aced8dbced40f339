package apiserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver/pki"
	"kiln.dev/kiln/components/testenv"
)

// TestKubectl_CreateToken_authenticatesAsServiceAccount: `kubectl create
// token` issues a token that kubectl can use; RBAC decides what it may do,
// and deleting the service account revokes it.
func TestKubectl_CreateToken_authenticatesAsServiceAccount(t *testing.T) {
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	kubectlMust(t, env, "create", "namespace", "team")
	kubectlMust(t, env, "create", "serviceaccount", "robot", "-n", "team")

	token := strings.TrimSpace(kubectlMust(t, env, "create", "token", "robot", "-n", "team", "--duration", "2h"))
	if strings.Count(token, ".") != 2 {
		t.Fatalf("create token printed %q, want a JWT", token)
	}
	as := func(args ...string) (string, error) {
		return kubectl(t, env, append([]string{"--token", token}, args...)...)
	}

	who, err := as("auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.groups}")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"system:serviceaccount:team:robot", `"system:serviceaccounts"`, `"system:serviceaccounts:team"`} {
		if !strings.Contains(who, want) {
			t.Errorf("auth whoami = %q, want %s in it", who, want)
		}
	}

	_, err = as("get", "pods", "-n", "team")
	if err == nil || !strings.Contains(err.Error(), `User "system:serviceaccount:team:robot" cannot list resource "pods"`) {
		t.Fatalf("get pods without a binding: %v, want Forbidden for the service account", err)
	}
	kubectlMust(t, env, "create", "rolebinding", "robot-view", "--clusterrole", "view", "--serviceaccount", "team:robot", "-n", "team")
	if _, err := as("get", "pods", "-n", "team"); err != nil {
		t.Fatalf("get pods with view bound: %v", err)
	}
	if _, err := as("get", "pods", "-n", "default"); err == nil {
		t.Fatal("the RoleBinding in team let the token list pods in default")
	}

	kubectlMust(t, env, "delete", "serviceaccount", "robot", "-n", "team")
	_, err = as("get", "pods", "-n", "team")
	if err == nil || !strings.Contains(err.Error(), "Unauthorized") && !strings.Contains(err.Error(), "must be logged in") {
		t.Fatalf("get pods after the service account was deleted: %v, want Unauthorized", err)
	}
}

// TestKubectl_CreateToken_badRequests: a missing service account and a
// too-short duration are clear errors.
func TestKubectl_CreateToken_badRequests(t *testing.T) {
	testenv.Kubectl(t)
	env := testenv.Start(t, testenv.Options{})
	_, err := kubectl(t, env, "create", "token", "ghost")
	if err == nil || !strings.Contains(err.Error(), `serviceaccounts "ghost" not found`) {
		t.Errorf("token for a missing service account: %v", err)
	}
	kubectlMust(t, env, "create", "serviceaccount", "robot")
	_, err = kubectl(t, env, "create", "token", "robot", "--duration", "1m")
	if err == nil || !strings.Contains(err.Error(), "spec.expirationSeconds") || !strings.Contains(err.Error(), "less than 10 minutes") {
		t.Errorf("token for one minute: %v", err)
	}
}

// TestTokenRequest_boundAndForged drives TokenRequest through client-go:
// a token bound to a pod dies with the pod; a token with a wrong UID is a
// conflict; tokens forged, tampered with, expired or for another audience
// do not authenticate; TokenReview agrees with the authenticator.
func TestTokenRequest_boundAndForged(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cs := env.Clientset
	sa, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	request := func(ref *authenticationv1.BoundObjectReference) (*authenticationv1.TokenRequest, error) {
		return cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "robot",
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: ref}}, metav1.CreateOptions{})
	}
	whoami := func(token string) (string, error) {
		rc := rest.AnonymousClientConfig(env.RESTConfig)
		rc.BearerToken = token
		c, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return "", err
		}
		r, err := c.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return "", err
		}
		return r.Status.UserInfo.Username, nil
	}
	const user = "system:serviceaccount:default:robot"

	tr, err := request(&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(tr.Status.ExpirationTimestamp.Time); left < 55*time.Minute || left > 61*time.Minute {
		t.Errorf("default token expires in %v, want an hour", left)
	}
	if tr.Spec.BoundObjectRef.UID != pod.UID {
		t.Errorf("bound UID = %q, want the pod's %q", tr.Spec.BoundObjectRef.UID, pod.UID)
	}
	bound := tr.Status.Token
	if got, err := whoami(bound); err != nil || got != user {
		t.Fatalf("bound token is %q, %v; want %s", got, err, user)
	}
	review, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: bound}}, metav1.CreateOptions{})
	if err != nil || !review.Status.Authenticated || review.Status.User.Username != user || review.Status.User.UID != string(sa.UID) {
		t.Fatalf("TokenReview of the bound token: %+v, %v", review, err)
	}

	_, err = request(&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: "p", UID: "not-the-pod"})
	if !apierrors.IsConflict(err) {
		t.Errorf("bound to a wrong UID: %v, want Conflict", err)
	}
	_, err = request(&authenticationv1.BoundObjectReference{Kind: "ConfigMap", APIVersion: "v1", Name: "p"})
	if !apierrors.IsInvalid(err) {
		t.Errorf("bound to a ConfigMap: %v, want Invalid", err)
	}

	plain, err := request(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The key that signed them is derived from the CA's, which a test can
	// read; a token made with it is as good as the server's.
	ca, err := pki.EnsureCA(filepath.Join(env.DataDir, "tls"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.ServiceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		now := time.Now()
		c := jwt.MapClaims{
			"iss": "https://kubernetes.default.svc.cluster.local", "sub": user,
			"aud": []string{"https://kubernetes.default.svc.cluster.local"},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"kubernetes.io": map[string]any{"namespace": "default", "serviceaccount": map[string]any{"name": "robot", "uid": string(sa.UID)}},
		}
		if mod != nil {
			mod(c)
		}
		return c
	}
	sign := func(k *ecdsa.PrivateKey, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, err := whoami(sign(key, claims(nil))); err != nil || got != user {
		t.Fatalf("a well-made token: %q, %v; the forged cases below prove nothing", got, err)
	}
	tampered := []byte(plain.Status.Token)
	tampered[len(tampered)-5] ^= 1
	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]string{
		"tampered":       string(tampered),
		"other key":      sign(other, claims(nil)),
		"alg none":       noneToken,
		"expired":        sign(key, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })),
		"other audience": sign(key, claims(func(c jwt.MapClaims) { c["aud"] = []string{"vault"} })),
		"other issuer":   sign(key, claims(func(c jwt.MapClaims) { c["iss"] = "https://elsewhere" })),
		"no expiry":      sign(key, claims(func(c jwt.MapClaims) { delete(c, "exp") })),
		"subject mismatch": sign(key, claims(func(c jwt.MapClaims) {
			c["sub"] = "system:serviceaccount:kube-system:robot"
		})),
		"stale uid": sign(key, claims(func(c jwt.MapClaims) {
			c["kubernetes.io"] = map[string]any{"namespace": "default", "serviceaccount": map[string]any{"name": "robot", "uid": "old"}}
		})),
	} {
		if got, err := whoami(token); !apierrors.IsUnauthorized(err) {
			t.Errorf("%s token: %q, %v; want Unauthorized", name, got, err)
		}
	}

	// A pod-bound token ends with its pod.
	if err := cs.CoreV1().Pods("default").Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod still there after a delete with grace 0: %v", err)
	}
	if got, err := whoami(bound); !apierrors.IsUnauthorized(err) {
		t.Errorf("bound token after its pod was deleted: %q, %v; want Unauthorized", got, err)
	}
	if got, err := whoami(plain.Status.Token); err != nil || got != user {
		t.Errorf("unbound token after the pod was deleted: %q, %v", got, err)
	}
	review, err = cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: bound}}, metav1.CreateOptions{})
	if err != nil || review.Status.Authenticated {
		t.Errorf("TokenReview of the dead pod's token: %+v, %v", review.Status, err)
	}
	if err == nil && review.Spec.Token != "" {
		t.Error("TokenReview echoed the token")
	}
}

// TestTokenRequest_nodeRestriction: a node gets tokens only for its own
// pods, bound to the pod, for the account the pod runs as.
func TestTokenRequest_nodeRestriction(t *testing.T) {
	env := testenv.Start(t, testenv.Options{})
	ctx := t.Context()
	cs := env.Clientset
	for _, sa := range []string{"robot", "other"} {
		if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for pod, node := range map[string]string{"on-a": "a", "on-b": "b"} {
		if _, err := cs.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: pod},
			Spec:       corev1.PodSpec{NodeName: node, ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	nodeA := nodeClient(t, env, "a")
	request := func(account string, pod string) error {
		tr := &authenticationv1.TokenRequest{}
		if pod != "" {
			tr.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod}
		}
		_, err := nodeA.CoreV1().ServiceAccounts("default").CreateToken(ctx, account, tr, metav1.CreateOptions{})
		return err
	}
	if err := request("robot", "on-a"); err != nil {
		t.Fatalf("node a, its pod's account, bound to its pod: %v", err)
	}
	for what, err := range map[string]error{
		"another node's pod":     request("robot", "on-b"),
		"unbound":                request("robot", ""),
		"an account not its own": request("other", "on-a"),
	} {
		if !apierrors.IsForbidden(err) {
			t.Errorf("node a, %s: %v, want Forbidden", what, err)
		}
	}
}

// TestServiceAccountAdmission_mountsToken: with MountServiceAccountTokens
// a new pod gets the kube-api-access volume in every container, unless it
// or its service account opts out.
func TestServiceAccountAdmission_mountsToken(t *testing.T) {
	env := testenv.Start(t, testenv.Options{MountServiceAccountTokens: true})
	ctx := t.Context()
	cs := env.Clientset
	quiet := false
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet"}, AutomountServiceAccountToken: &quiet}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const path = "/var/run/secrets/kubernetes.io/serviceaccount"
	create := func(name string, mod func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "a", Image: "busybox"}, {Name: "b", Image: "busybox"}},
		}}
		if mod != nil {
			mod(p)
		}
		out, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return out
	}
	// mounted returns the kube-api-access volume's name ("" if none) and
	// the containers that mount it at path.
	mounted := func(p *corev1.Pod) (string, []string) {
		vol := ""
		for _, v := range p.Spec.Volumes {
			if strings.HasPrefix(v.Name, "kube-api-access-") {
				vol = v.Name
				src := v.Projected.Sources
				if len(src) != 3 || src[0].ServiceAccountToken == nil || src[0].ServiceAccountToken.Path != "token" ||
					src[1].ConfigMap == nil || src[1].ConfigMap.Name != "kube-root-ca.crt" ||
					src[2].DownwardAPI == nil || src[2].DownwardAPI.Items[0].Path != "namespace" {
					t.Errorf("pod %s: volume %s has sources %+v", p.Name, v.Name, src)
				}
			}
		}
		var in []string
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			for _, m := range c.VolumeMounts {
				if m.MountPath == path && m.Name == vol && m.ReadOnly {
					in = append(in, c.Name)
				}
			}
		}
		return vol, in
	}

	if vol, in := mounted(create("plain", nil)); vol == "" || strings.Join(in, ",") != "init,a,b" {
		t.Errorf("plain pod: volume %q mounted in %v, want one in init,a,b", vol, in)
	}
	optOut := false
	if vol, _ := mounted(create("opted-out", func(p *corev1.Pod) { p.Spec.AutomountServiceAccountToken = &optOut })); vol != "" {
		t.Errorf("a pod with automountServiceAccountToken false got %s", vol)
	}
	if vol, _ := mounted(create("quiet-account", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "quiet" })); vol != "" {
		t.Errorf("a pod of an account with automountServiceAccountToken false got %s", vol)
	}
	optIn := true
	if vol, _ := mounted(create("quiet-but-asks", func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "quiet"
		p.Spec.AutomountServiceAccountToken = &optIn
	})); vol == "" {
		t.Error("a pod asking for its token did not get it because of its account")
	}
	own := create("own-mount", func(p *corev1.Pod) {
		p.Spec.Volumes = []corev1.Volume{{Name: "mine", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "mine", MountPath: path}}
	})
	if vol, in := mounted(own); vol == "" || strings.Join(in, ",") != "init,b" {
		t.Errorf("pod with its own mount at %s: volume %q in %v, want it in init,b only", path, vol, in)
	}

	off := testenv.Start(t, testenv.Options{})
	p, err := off.Clientset.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vol, _ := mounted(p); vol != "" {
		t.Errorf("without MountServiceAccountTokens a pod got %s", vol)
	}
}
