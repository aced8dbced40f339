package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"kiln.dev/kiln/components/apiserver/pki"
)

// EtcdCluster is a real etcd cluster of n members, each an embedded etcd
// in this test process on its own 127.0.0.1 ports, with TLS on the client
// and the peer side (mutual: both refuse a certificate the cluster's CA did
// not sign). It stands in for the external datastore of a kiln HA setup.
// Members can be stopped and restarted one at a time (Stop, Start) to
// prove that losing a minority changes nothing.
type EtcdCluster struct {
	// Endpoints are the members' client URLs (https://127.0.0.1:PORT).
	Endpoints []string
	// CAFile is the CA that signed every member's and the client's
	// certificate; CertFile and KeyFile are a client certificate.
	CAFile, CertFile, KeyFile string

	t       testing.TB
	mu      sync.Mutex
	members []*etcdMember
}

type etcdMember struct {
	cfg  *embed.Config
	etcd *embed.Etcd // nil while stopped
}

// etcdReadyTimeout bounds a member's (or the cluster's) start.
const etcdReadyTimeout = 60 * time.Second

// StartEtcdCluster starts an n-member etcd cluster and waits until every
// member is ready. Everything stops at test cleanup.
func StartEtcdCluster(t testing.TB, n int) *EtcdCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartEtcdCluster: n = %d", n)
	}
	dir := t.TempDir()
	ca, err := pki.EnsureCA(filepath.Join(dir, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	c := &EtcdCluster{t: t, CAFile: filepath.Join(dir, "ca", pki.CACertFile)}
	// One certificate serves every member, for both its server and its
	// client side (peers dial each other with it): loopback is the only
	// host name they have.
	memberCert, memberKey := writeEtcdCert(t, ca, dir, "member", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	c.CertFile, c.KeyFile = writeEtcdCert(t, ca, dir, "client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	tlsInfo := transport.TLSInfo{CertFile: memberCert, KeyFile: memberKey, TrustedCAFile: c.CAFile, ClientCertAuth: true}

	var initial []string
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		cu, _ := url.Parse("https://" + freeLoopback(t))
		pu, _ := url.Parse("https://" + freeLoopback(t))
		ec := embed.NewConfig()
		ec.Name = name
		ec.Dir = filepath.Join(dir, name)
		ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		ec.ClientTLSInfo, ec.PeerTLSInfo = tlsInfo, tlsInfo
		ec.InitialClusterToken = "kiln-test"
		ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		// Shorter than etcd's 100 ms/1 s: a killed leader is replaced
		// within a second or so, as on a quiet LAN.
		ec.TickMs, ec.ElectionMs = 50, 500
		c.Endpoints = append(c.Endpoints, cu.String())
		initial = append(initial, name+"="+pu.String())
		c.members = append(c.members, &etcdMember{cfg: ec})
	}
	for _, m := range c.members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Stop(i)
		}
	})
	// A new member waits for its peers before it is ready, so all start
	// before any is waited for.
	for i := range c.members {
		c.start(i)
	}
	for i := range c.members {
		c.waitReady(i)
	}
	return c
}

// Stop stops member i (as if its machine died: connections drop, its
// data stays). Stopping a stopped member does nothing.
func (c *EtcdCluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	m := c.members[i]
	e := m.etcd
	m.etcd = nil
	c.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Start restarts member i from its data on the same addresses and waits
// until it has rejoined the cluster.
func (c *EtcdCluster) Start(i int) {
	c.t.Helper()
	c.start(i)
	c.waitReady(i)
}

func (c *EtcdCluster) start(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.etcd != nil {
		return
	}
	e, err := embed.StartEtcd(m.cfg)
	if err != nil {
		c.t.Fatalf("start etcd member %d: %v", i, err)
	}
	m.etcd = e
}

func (c *EtcdCluster) waitReady(i int) {
	c.t.Helper()
	c.mu.Lock()
	e := c.members[i].etcd
	c.mu.Unlock()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		c.t.Fatalf("etcd member %d: %v", i, err)
	case <-time.After(etcdReadyTimeout):
		c.t.Fatalf("etcd member %d not ready in %v", i, etcdReadyTimeout)
	}
}

// Leader returns the index of the member that is the Raft leader now, or
// -1 when no running member knows of one (an election is on).
func (c *EtcdCluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.etcd != nil && m.etcd.Server.Leader() == m.etcd.Server.MemberID() {
			return i
		}
	}
	return -1
}

// freeLoopback returns a 127.0.0.1 address whose port was free a moment
// ago; a member keeps its ports across Stop and Start.
func freeLoopback(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeEtcdCert issues a certificate for 127.0.0.1 and localhost with the
// given usages, signed by ca, and writes it and its key into dir. pki
// issues serving and client certificates separately; an etcd peer needs
// one certificate that is both.
func writeEtcdCert(t testing.TB, ca *pki.CA, dir, name string, usage []x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
