package apiserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kiln.dev/kiln/components/store"
)

// TestTokenCache_revocation: a service account token's authentication is
// remembered for tokenCacheTTL, so a revocation made past this server
// (another server's delete, here a write to the store) takes effect here
// within that time, as in kube; one made through this server at once.
func TestTokenCache_revocation(t *testing.T) {
	st := runStore(t)
	ctx := t.Context()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, TLS: &tls.Certificate{}, ServiceAccountKey: key})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	saKey := store.Key("", "serviceaccounts", "team", "robot")
	putSA := func(uid string) {
		t.Helper()
		data, err := json.Marshal(&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{Kind: "ServiceAccount", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "robot", Namespace: "team", UID: types.UID(uid)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Client().Put(ctx, saKey, string(data)); err != nil {
			t.Fatal(err)
		}
	}
	token := func(uid string) string {
		t.Helper()
		tok, err := signToken(key, &saClaims{
			RegisteredClaims: jwt.RegisteredClaims{
				Issuer: s.cfg.ServiceAccountIssuer, Audience: jwt.ClaimStrings{s.cfg.ServiceAccountIssuer},
				Subject:   ServiceAccountUserPrefix + "team:robot",
				IssuedAt:  jwt.NewNumericDate(s.now()),
				ExpiresAt: jwt.NewNumericDate(s.now().Add(time.Hour)),
			},
			Kubernetes: saKubernetes{Namespace: "team", ServiceAccount: saRef{Name: "robot", UID: uid}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	authn := func(tok string) bool {
		_, ok := s.serviceAccountUser(ctx, tok)
		return ok
	}

	putSA("uid-1")
	tok := token("uid-1")
	if !authn(tok) {
		t.Fatal("a valid token is refused")
	}
	// Deleted past this server: remembered for the TTL, then refused.
	if _, err := st.Client().Delete(ctx, saKey); err != nil {
		t.Fatal(err)
	}
	if !authn(tok) {
		t.Fatal("the token's authentication was not remembered")
	}
	advance(tokenCacheTTL)
	if authn(tok) {
		t.Fatalf("the token still authenticates %v after its account was deleted", tokenCacheTTL)
	}
	// Deleted through this server: refused at once.
	putSA("uid-2")
	tok = token("uid-2")
	if !authn(tok) {
		t.Fatal("a valid token is refused")
	}
	if _, _, err := s.delete(ctx, s.byGVR[gvrServiceAccounts], "team", "robot", metav1.DeleteOptions{}, false); err != nil {
		t.Fatal(err)
	}
	if authn(tok) {
		t.Fatal("the token authenticates after this server deleted its account")
	}
}

// TestTokenCache_bounded: a full cache drops expired entries first, then
// everything, so it never holds more than tokenCacheSize.
func TestTokenCache_bounded(t *testing.T) {
	var c tokenCache
	now := time.Now()
	for i := range tokenCacheSize {
		c.add(string(rune(i)), User{Name: "u"}, now, now.Add(time.Hour))
	}
	if _, ok := c.get(string(rune(0)), now); !ok {
		t.Fatal("first entry missing before the cache is full")
	}
	c.add("one more", User{Name: "u"}, now, now.Add(time.Hour))
	if len(c.entries) != 1 {
		t.Fatalf("%d entries after overflowing with none expired, want 1", len(c.entries))
	}
	later := now.Add(tokenCacheTTL)
	for i := range tokenCacheSize - 1 {
		c.add(string(rune(i)), User{Name: "u"}, later, later.Add(time.Hour))
	}
	c.add("last", User{Name: "u"}, later, later.Add(time.Hour))
	if _, ok := c.get("one more", later); ok || len(c.entries) != tokenCacheSize {
		t.Fatalf("after an overflow with one expired: %d entries, expired one kept %v", len(c.entries), ok)
	}
}
