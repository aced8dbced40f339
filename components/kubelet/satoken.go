package kubelet

import (
	"context"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Projected serviceAccountToken sources: the kubelet asks the API server
// for a token of the pod's service account, bound to the pod (so it dies
// with it), and writes it to the volume. A token is reused until 80% of
// its life or 24 hours have passed, as kube's token manager does; the
// periodic volume rewrite (ResyncPeriod) then puts a fresh one in place
// before the old one expires.

// maxTokenReuse caps how long one token is written again.
const maxTokenReuse = 24 * time.Hour

type tokenKey struct {
	pod      types.UID
	account  string
	audience string
	seconds  int64
}

type cachedToken struct {
	token     string
	refreshAt time.Time
	expires   time.Time
}

// tokenCache holds the tokens the kubelet has written, per pod and source.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[tokenKey]cachedToken
}

// serviceAccountTokenFiles is the file of one serviceAccountToken source.
func (k *Kubelet) serviceAccountTokenFiles(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection, defaultMode *int32) (map[string]file, error) {
	token, err := k.serviceAccountToken(ctx, pod, src)
	if err != nil {
		return nil, err
	}
	return map[string]file{src.Path: {data: []byte(token), mode: fileMode(nil, defaultMode)}}, nil
}

func (k *Kubelet) serviceAccountToken(ctx context.Context, pod *corev1.Pod, src *corev1.ServiceAccountTokenProjection) (string, error) {
	account := pod.Spec.ServiceAccountName
	if account == "" {
		account = "default"
	}
	key := tokenKey{pod: pod.UID, account: account, audience: src.Audience}
	if src.ExpirationSeconds != nil {
		key.seconds = *src.ExpirationSeconds
	}
	now := k.now()
	k.tokens.mu.Lock()
	cached, ok := k.tokens.tokens[key]
	k.tokens.mu.Unlock()
	if ok && now.Before(cached.refreshAt) {
		return cached.token, nil
	}

	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: src.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	tr, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, account, req, metav1.CreateOptions{})
	if err != nil {
		if ok && now.Before(cached.expires) {
			// The API server is away: the token written last still
			// works; try again at the next rewrite.
			k.log.Warn("refreshing a service account token", logKeyPod, pod.Namespace+"/"+pod.Name, logKeyError, err)
			return cached.token, nil
		}
		return "", fmt.Errorf("service account token of %s/%s: %w", pod.Namespace, account, err)
	}
	expires := tr.Status.ExpirationTimestamp.Time
	reuse := min(expires.Sub(now)*4/5, maxTokenReuse)
	k.tokens.mu.Lock()
	defer k.tokens.mu.Unlock()
	if k.tokens.tokens == nil {
		k.tokens.tokens = map[tokenKey]cachedToken{}
	}
	// Tokens of pods that are gone have expired by now; drop them.
	for old, t := range k.tokens.tokens {
		if now.After(t.expires) {
			delete(k.tokens.tokens, old)
		}
	}
	k.tokens.tokens[key] = cachedToken{token: tr.Status.Token, refreshAt: now.Add(reuse), expires: expires}
	return tr.Status.Token, nil
}
