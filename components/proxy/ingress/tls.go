package ingress

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"kiln.dev/kiln/components/internal/ingressclass"
)

// certTable maps SNI names to certificates, immutable once built.
type certTable struct {
	hosts     map[string]*tls.Certificate
	wildcards map[string]*tls.Certificate // "*.example.com" under "example.com"
}

// certificate is the TLS listener's GetCertificate: the certificate of
// the Ingress TLS entry for the SNI name (exact, then one-label
// wildcard), else the self-signed default, as Traefik serves its default
// certificate to names it has none for.
func (c *Controller) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := c.certs.Load()
	name := normalizeHost(hello.ServerName)
	if cert := t.hosts[name]; cert != nil {
		return cert, nil
	}
	if label, parent, ok := strings.Cut(name, "."); ok && label != "" {
		if cert := t.wildcards[parent]; cert != nil {
			return cert, nil
		}
	}
	return c.defaultCert, nil
}

// tlsSecrets are the Secrets the TLS entries of ings name.
func tlsSecrets(ings []*networkingv1.Ingress) map[types.NamespacedName]bool {
	out := map[types.NamespacedName]bool{}
	for _, ing := range ings {
		for _, t := range ing.Spec.TLS {
			if t.SecretName != "" {
				out[types.NamespacedName{Namespace: ing.Namespace, Name: t.SecretName}] = true
			}
		}
	}
	return out
}

// newCertTable maps the hosts of the TLS entries of ings (oldest Ingress
// first wins a host) to their Secrets' certificates. An entry without
// hosts covers the DNS names of its certificate. A Secret that is
// missing or holds no valid key pair is logged and skipped: its hosts get
// the default certificate, and nothing else changes.
func (c *Controller) newCertTable(ings []*networkingv1.Ingress) *certTable {
	t := &certTable{hosts: map[string]*tls.Certificate{}, wildcards: map[string]*tls.Certificate{}}
	for _, ing := range sortIngresses(ings) {
		for _, entry := range ing.Spec.TLS {
			if entry.SecretName == "" {
				continue
			}
			key := types.NamespacedName{Namespace: ing.Namespace, Name: entry.SecretName}
			cert, err := c.secrets.cert(key)
			if err != nil {
				c.log.Warn("ingress tls secret not usable, serving the default certificate", logIngress, ing.Namespace+"/"+ing.Name,
					logSecret, key.String(), logError, err)
				continue
			}
			if cert == nil {
				continue // not yet seen by its watch
			}
			hosts := entry.Hosts
			if len(hosts) == 0 {
				hosts = cert.Leaf.DNSNames
			}
			for _, h := range hosts {
				h = strings.ToLower(h)
				m := t.hosts
				if parent, ok := strings.CutPrefix(h, "*."); ok {
					m, h = t.wildcards, parent
				}
				if m[h] == nil {
					m[h] = cert
				}
			}
		}
	}
	return t
}

// selfSignedCert makes the default certificate, as Traefik makes its
// "TRAEFIK DEFAULT CERT" at start: no client trusts it, so a name without
// a TLS entry still answers, with a warning in the browser.
func selfSignedCert() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "KILN DEFAULT CERT"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// secretWatches keeps one watch per TLS Secret the served Ingresses name,
// selected by name and type, as the kubelet watches the Secrets of its
// pods: the node authorizer lets a node see exactly those, and a renewed
// certificate is served as soon as it is written.
type secretWatches struct {
	client   kubernetes.Interface
	onChange func()
	log      *slog.Logger

	// watches is owned by the sync loop (set, cert, stopAll).
	watches map[types.NamespacedName]*secretWatch
	wg      sync.WaitGroup
}

type secretWatch struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	// parsed caches the key pair of the Secret's resourceVersion.
	parsedRV string
	parsed   *tls.Certificate
	err      error
}

func newSecretWatches(client kubernetes.Interface, onChange func(), log *slog.Logger) *secretWatches {
	return &secretWatches{client: client, onChange: onChange, log: log, watches: map[types.NamespacedName]*secretWatch{}}
}

// set starts a watch for each key in want that has none and stops the
// watches of the others.
func (s *secretWatches) set(ctx context.Context, want map[types.NamespacedName]bool) {
	for key, w := range s.watches {
		if !want[key] {
			w.cancel()
			delete(s.watches, key)
		}
	}
	for key := range want {
		if s.watches[key] != nil {
			continue
		}
		sel := fields.AndSelectors(fields.OneTermEqualSelector("metadata.name", key.Name),
			fields.OneTermEqualSelector("type", ingressclass.TLSSecretType)).String()
		secrets := s.client.CoreV1().Secrets(key.Namespace)
		inf := cache.NewSharedIndexInformer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = sel
				return secrets.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = sel
				return secrets.Watch(ctx, o)
			},
		}, &corev1.Secret{}, 0, cache.Indexers{})
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { s.onChange() },
			UpdateFunc: func(any, any) { s.onChange() },
			DeleteFunc: func(any) { s.onChange() },
		})
		wctx, cancel := context.WithCancel(ctx)
		s.watches[key] = &secretWatch{inf: inf, cancel: cancel}
		s.wg.Go(func() {
			inf.RunWithContext(wctx)
		})
		// The first list's result comes as an Add event, which wakes
		// the loop to build the certificates again.
		s.log.Debug("watching tls secret", logSecret, key.String())
	}
}

// errSecretMissing and errSecretInvalid say why a TLS Secret is not used.
var (
	errSecretMissing = errors.New("secret not found (or not of type " + ingressclass.TLSSecretType + ")")
	errSecretInvalid = errors.New("secret's tls.crt and tls.key are not a valid key pair")
)

// cert returns key's certificate: nil and no error while its watch has
// not listed it yet, an error when it is missing or not a key pair.
func (s *secretWatches) cert(key types.NamespacedName) (*tls.Certificate, error) {
	w := s.watches[key]
	if w == nil || !w.inf.HasSynced() {
		return nil, nil
	}
	obj, ok, _ := w.inf.GetStore().GetByKey(key.String())
	if !ok {
		return nil, errSecretMissing
	}
	sec := obj.(*corev1.Secret)
	if sec.ResourceVersion == w.parsedRV && w.parsedRV != "" {
		return w.parsed, w.err
	}
	w.parsedRV, w.parsed, w.err = sec.ResourceVersion, nil, nil
	pair, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		w.err = errors.Join(errSecretInvalid, err)
		return nil, w.err
	}
	w.parsed = &pair
	return w.parsed, nil
}

// stopAll stops every watch and waits for them.
func (s *secretWatches) stopAll() {
	for key, w := range s.watches {
		w.cancel()
		delete(s.watches, key)
	}
	s.wg.Wait()
}
