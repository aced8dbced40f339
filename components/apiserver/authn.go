package apiserver

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"sync"
	"time"
)

// connCertKey holds a connection's *connCert in its requests' contexts.
type connCertKey struct{}

// connCert is the verdict on one TLS connection's client certificate.
// The chain is verified once per connection, on its first request, not
// once per request: a kubelet sends all its requests over one HTTP/2
// connection, and verifying an ECDSA chain costs more than the node
// authorizer's whole decision. Validity is still checked per request, so
// a connection outliving its certificate stops authenticating.
type connCert struct {
	once      sync.Once
	user      User
	ok        bool
	notBefore time.Time
	notAfter  time.Time
}

// withConnCert is the http.Server's ConnContext: it gives each connection
// a place for its certificate's verdict.
func withConnCert(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connCertKey{}, &connCert{})
}

// certUser authenticates the request's client certificate against
// Config.ClientCAs: a chain to those roots valid for client auth gives
// User{Name: CN, Groups: O}, as kube's x509 authenticator.
func (s *Server) certUser(r *http.Request) (User, bool) {
	if s.cfg.ClientCAs == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return User{}, false
	}
	now := s.now()
	cc, cached := r.Context().Value(connCertKey{}).(*connCert)
	if !cached {
		// The handler served without Run (Handler()): no per-connection
		// cache, so verify every time.
		cc = &connCert{}
	}
	cc.once.Do(func() { cc.user, cc.ok, cc.notBefore, cc.notAfter = s.verifyCert(r.TLS.PeerCertificates, now) })
	if !cc.ok || now.Before(cc.notBefore) || now.After(cc.notAfter) {
		return User{}, false
	}
	return cc.user, true
}

// verifyCert verifies a peer's chain (leaf first) and returns its user and
// the window in which the whole chain is valid.
func (s *Server) verifyCert(chain []*x509.Certificate, now time.Time) (u User, ok bool, notBefore, notAfter time.Time) {
	leaf := chain[0]
	if leaf.Subject.CommonName == "" {
		return User{}, false, notBefore, notAfter
	}
	opts := x509.VerifyOptions{Roots: s.cfg.ClientCAs, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	verified, err := leaf.Verify(opts)
	if err != nil || len(verified) == 0 {
		return User{}, false, notBefore, notAfter
	}
	notBefore, notAfter = leaf.NotBefore, leaf.NotAfter
	for _, c := range verified[0] {
		if c.NotBefore.After(notBefore) {
			notBefore = c.NotBefore
		}
		if c.NotAfter.Before(notAfter) {
			notAfter = c.NotAfter
		}
	}
	groups := append([]string(nil), leaf.Subject.Organization...)
	return User{Name: leaf.Subject.CommonName, Groups: groups}, true, notBefore, notAfter
}

// handleCACerts serves the cluster CA certificate to anyone: a joining
// agent fetches it before it trusts the server, and checks it against the
// hash its token carries.
func (s *Server) handleCACerts(w http.ResponseWriter, r *http.Request) {
	if len(s.cfg.CACertPEM) == 0 {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	writeRaw(w, http.StatusOK, "application/x-pem-file", s.cfg.CACertPEM)
}
