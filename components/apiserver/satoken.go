package apiserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Service account tokens, as kube-apiserver issues them since bound
// tokens: TokenRequest (POST serviceaccounts/NAME/token) signs an ES256
// JWT, and the authenticator takes such a token as the service account
// for as long as it has not expired and the service account, and the pod
// or secret it is bound to, still exist with the UIDs it names. Nothing
// is stored: deleting the service account (or the pod) revokes its
// tokens, at once on the server that deletes it and within tokenCacheTTL
// on the others (tokencache.go).

const (
	// minTokenSeconds and defaultTokenSeconds are kube's bounds for
	// TokenRequest's spec.expirationSeconds.
	minTokenSeconds     = 10 * 60
	defaultTokenSeconds = 60 * 60
	// tokenLeeway absorbs clock skew between the servers of a cluster.
	tokenLeeway = 10 * time.Second
	// GroupServiceAccounts holds every service account, as in Kubernetes.
	GroupServiceAccounts = "system:serviceaccounts"
	// ServiceAccountUserPrefix starts a service account's user name:
	// system:serviceaccount:NAMESPACE:NAME.
	ServiceAccountUserPrefix = "system:serviceaccount:"
)

var (
	gvrServiceAccounts = gvrKey{"", "v1", "serviceaccounts"}
	gvrPods            = gvrKey{"", "v1", "pods"}
	gvrSecrets         = gvrKey{"", "v1", "secrets"}
	tokenRequestGK     = schema.GroupKind{Group: authenticationv1.GroupName, Kind: "TokenRequest"}
)

// saClaims are the claims of kube's service account tokens.
type saClaims struct {
	jwt.RegisteredClaims
	Kubernetes saKubernetes `json:"kubernetes.io"`
}

type saKubernetes struct {
	Namespace      string `json:"namespace"`
	ServiceAccount saRef  `json:"serviceaccount"`
	Pod            *saRef `json:"pod,omitempty"`
	Secret         *saRef `json:"secret,omitempty"`
}

type saRef struct {
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// handleTokenRequest serves POST serviceaccounts/NAME/token.
func (s *Server) handleTokenRequest(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	key := s.cfg.ServiceAccountKey
	if key == nil {
		writeError(w, apierrors.NewMethodNotSupported(corev1.Resource("serviceaccounts"), "create token"))
		return
	}
	tr := &authenticationv1.TokenRequest{}
	gvk := authenticationv1.SchemeGroupVersion.WithKind("TokenRequest")
	warnings, dry, err := readInto(w, r, tr, gvk)
	if err != nil {
		writeError(w, err)
		return
	}
	if tr.Name != "" && tr.Name != ri.name {
		writeError(w, badRequest("the name of the TokenRequest (%s) does not match the service account in the path (%s)", tr.Name, ri.name))
		return
	}
	claims, err := s.tokenClaims(r.Context(), ri.namespace, ri.name, tr)
	if err != nil {
		writeError(w, err)
		return
	}
	tr.TypeMeta = metav1.TypeMeta{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind}
	tr.Name, tr.Namespace = ri.name, ri.namespace
	tr.CreationTimestamp = metav1.NewTime(claims.IssuedAt.Time)
	if !dry {
		token, err := signToken(key, claims)
		if err != nil {
			writeError(w, apierrors.NewInternalError(err))
			return
		}
		tr.Status = authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(claims.ExpiresAt.Time)}
	}
	addWarnings(w, warnings)
	writeObject(w, r, http.StatusCreated, tr, nil)
}

// tokenClaims checks a TokenRequest for service account ns/name and
// returns the claims of its token; it fills in the request's defaults.
func (s *Server) tokenClaims(ctx context.Context, ns, name string, tr *authenticationv1.TokenRequest) (*saClaims, error) {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	if tr.Spec.ExpirationSeconds == nil {
		tr.Spec.ExpirationSeconds = new(int64(defaultTokenSeconds))
	}
	switch secs := *tr.Spec.ExpirationSeconds; {
	case secs < minTokenSeconds:
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), secs, "may not specify a duration less than 10 minutes"))
	case secs > math.MaxUint32:
		errs = append(errs, field.Invalid(spec.Child("expirationSeconds"), secs, "may not specify a duration larger than 2^32 seconds"))
	}
	if len(tr.Spec.Audiences) == 0 {
		tr.Spec.Audiences = []string{s.cfg.ServiceAccountIssuer}
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		p := spec.Child("boundObjectRef")
		if ref.Kind != "Pod" && ref.Kind != "Secret" {
			errs = append(errs, field.NotSupported(p.Child("kind"), ref.Kind, []string{"Pod", "Secret"}))
		}
		if ref.APIVersion != "" && ref.APIVersion != "v1" {
			errs = append(errs, field.NotSupported(p.Child("apiVersion"), ref.APIVersion, []string{"v1"}))
		}
		if ref.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
	}
	if len(errs) > 0 {
		return nil, invalid(tokenRequestGK, name, errs)
	}

	if _, isNode := nodeOf(userFrom(ctx)); isNode && tr.Spec.BoundObjectRef == nil {
		return nil, admitNodeToken(userFrom(ctx), name, nil, nil)
	}
	sa, err := s.getObject(ctx, gvrServiceAccounts, ns, name)
	if err != nil {
		return nil, storeError(err, corev1.Resource("serviceaccounts"), name)
	}
	if sa == nil {
		return nil, apierrors.NewNotFound(corev1.Resource("serviceaccounts"), name)
	}
	now := s.now()
	c := &saClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.ServiceAccountIssuer,
			Subject:   ServiceAccountUserPrefix + ns + ":" + name,
			Audience:  tr.Spec.Audiences,
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ID:        string(uuid.NewUUID()),
		},
		Kubernetes: saKubernetes{
			Namespace:      ns,
			ServiceAccount: saRef{Name: name, UID: string(accessor(sa).GetUID())},
		},
	}
	if ref := tr.Spec.BoundObjectRef; ref != nil {
		gvr, gr := gvrPods, corev1.Resource("pods")
		if ref.Kind == "Secret" {
			gvr, gr = gvrSecrets, corev1.Resource("secrets")
		}
		obj, err := s.getObject(ctx, gvr, ns, ref.Name)
		if err != nil {
			return nil, storeError(err, gr, ref.Name)
		}
		if obj == nil {
			return nil, apierrors.NewNotFound(gr, ref.Name)
		}
		uid := string(accessor(obj).GetUID())
		if ref.UID != "" && string(ref.UID) != uid {
			return nil, apierrors.NewConflict(gr, ref.Name, fmt.Errorf("the UID in the bound object reference (%s) does not match the UID in record (%s); the object might have been deleted and then recreated", ref.UID, uid))
		}
		if err := admitNodeToken(userFrom(ctx), name, ref, obj); err != nil {
			return nil, err
		}
		ref.UID = accessor(obj).GetUID()
		if ref.Kind == "Pod" {
			c.Kubernetes.Pod = &saRef{Name: ref.Name, UID: uid}
		} else {
			c.Kubernetes.Secret = &saRef{Name: ref.Name, UID: uid}
		}
	}
	return c, nil
}

// signToken signs claims with key as ES256, with kube's key ID: the
// base64url SHA-256 of the public key's DER.
func signToken(key *ecdsa.PrivateKey, claims *saClaims) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	if der, err := x509.MarshalPKIXPublicKey(&key.PublicKey); err == nil {
		sum := sha256.Sum256(der)
		t.Header["kid"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return t.SignedString(key)
}

// serviceAccountUser authenticates a token signed by ServiceAccountKey:
// unexpired, for the API's audience, and naming a service account (and a
// pod or secret, if bound) that still exists with the same UID.
func (s *Server) serviceAccountUser(ctx context.Context, token string) (User, bool) {
	key := s.cfg.ServiceAccountKey
	if key == nil || strings.Count(token, ".") != 2 {
		return User{}, false
	}
	now := s.now()
	if u, ok := s.tokens.get(token, now); ok {
		return u, true
	}
	var c saClaims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(s.cfg.ServiceAccountIssuer),
		jwt.WithAudience(s.cfg.ServiceAccountIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithTimeFunc(s.now))
	if err != nil {
		return User{}, false
	}
	k := c.Kubernetes
	if k.Namespace == "" || k.ServiceAccount.Name == "" || c.Subject != ServiceAccountUserPrefix+k.Namespace+":"+k.ServiceAccount.Name {
		return User{}, false
	}
	if !s.stillExists(ctx, gvrServiceAccounts, k.Namespace, k.ServiceAccount) {
		return User{}, false
	}
	if k.Pod != nil && !s.stillExists(ctx, gvrPods, k.Namespace, *k.Pod) {
		return User{}, false
	}
	if k.Secret != nil && !s.stillExists(ctx, gvrSecrets, k.Namespace, *k.Secret) {
		return User{}, false
	}
	u := User{
		Name:   c.Subject,
		UID:    k.ServiceAccount.UID,
		Groups: []string{GroupServiceAccounts, GroupServiceAccounts + ":" + k.Namespace, "system:authenticated"},
	}
	s.tokens.add(token, u, now, c.ExpiresAt.Time)
	return u, true
}

// stillExists reports whether the object a token names is there with the
// same UID and not past its deletion (a pod keeps its token through its
// grace period, as in kube).
func (s *Server) stillExists(ctx context.Context, gvr gvrKey, ns string, ref saRef) bool {
	obj, err := s.getObject(ctx, gvr, ns, ref.Name)
	if err != nil || obj == nil {
		return false
	}
	m := accessor(obj)
	if string(m.GetUID()) != ref.UID {
		return false
	}
	if dt := m.GetDeletionTimestamp(); dt != nil && dt.Time.Before(s.now()) {
		return false
	}
	return true
}

// Where and how kube's ServiceAccount admission mounts a pod's token.
const (
	serviceAccountMountPath  = "/var/run/secrets/kubernetes.io/serviceaccount"
	serviceAccountVolumeBase = "kube-api-access-"
	// serviceAccountTokenSeconds is kube's: an hour and 7 s, so a token
	// that lives exactly an hour shows that the kubelet rotated it.
	serviceAccountTokenSeconds = 3607
	rootCAConfigMap            = "kube-root-ca.crt"
)

// mountServiceAccountToken adds the kube-api-access volume to a new pod
// and mounts it in every container, unless the pod or its service
// account opts out or a container already has something there. A service
// account that does not exist yet does not refuse the pod: the kubelet
// waits for it, as it waits for a missing ConfigMap.
func (s *Server) mountServiceAccountToken(ctx context.Context, pod *corev1.Pod) error {
	if !s.cfg.MountServiceAccountTokens || s.cfg.ServiceAccountKey == nil {
		return nil
	}
	if a := pod.Spec.AutomountServiceAccountToken; a != nil && !*a {
		return nil
	}
	if pod.Spec.AutomountServiceAccountToken == nil {
		obj, err := s.getObject(ctx, gvrServiceAccounts, pod.Namespace, pod.Spec.ServiceAccountName)
		if err != nil {
			return storeError(err, corev1.Resource("serviceaccounts"), pod.Spec.ServiceAccountName)
		}
		if sa, ok := obj.(*corev1.ServiceAccount); ok && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken {
			return nil
		}
	}
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, serviceAccountVolumeBase) {
			return nil
		}
	}
	name := generateName(serviceAccountVolumeBase)
	mode := int32(0o644)
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		Projected: &corev1.ProjectedVolumeSource{DefaultMode: &mode, Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: new(int64(serviceAccountTokenSeconds))}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		}},
	}})
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			c := &cs[i]
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == serviceAccountMountPath }) {
				c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: name, ReadOnly: true, MountPath: serviceAccountMountPath})
			}
		}
	}
	return nil
}
