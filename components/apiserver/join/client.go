package join

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver/pki"
)

const (
	// requestTimeout bounds each request of a join.
	requestTimeout = 15 * time.Second
	// maxAnswerBytes bounds what the agent reads of a server's answer.
	maxAnswerBytes = 1 << 20
	// DefaultPort is the API port of a server URL without one.
	DefaultPort = "6443"
)

// JoinConfig configures Join. Every field but NodeIP is required.
type JoinConfig struct {
	// Servers are API server URLs (https://host[:port]); each is tried in
	// turn.
	Servers []string
	// Token is the whole join token, K10<CA hash>::node:<secret>.
	Token string
	// NodeName is the Node to join as.
	NodeName string
	// NodeIP is the node's address, for the kubelet's serving certificate.
	NodeIP string
	// Dir keeps the credentials (DATA_DIR/agent).
	Dir string
	// Logger gets a line per server that fails; nil means slog.Default().
	Logger *slog.Logger
}

// Credentials are a node's identity and what it learnt when joining.
type Credentials struct {
	Info
	// CACertPEM is the cluster CA; ClientCertPEM and ClientKeyPEM are the
	// node's client certificate and key (PEM).
	CACertPEM, ClientCertPEM, ClientKeyPEM []byte
	// Serving is the kubelet's serving certificate.
	Serving tls.Certificate
	// Reused is true when they were read from Dir, without a join.
	Reused bool

	servingCertPEM, servingKeyPEM []byte
	// password is the node password the join sent (PasswordFile).
	password string
	dialer   *failoverDialer
}

// Join returns the node's credentials: the ones saved in cfg.Dir when they
// are still good for cfg (no request is made), else new ones from the
// first server that accepts the token, saved to cfg.Dir.
//
// Before the secret is sent anywhere, the server's CA (GET /cacerts, not
// verified) must hash to the token's CA hash; a mismatch is an error
// naming both hashes and no other server is tried. The join request then
// goes over TLS verified against that CA only. A server that does not
// answer is skipped; when none answers the error wraps ErrUnreachable. A
// server refusing the token (401) is an error.
func Join(ctx context.Context, cfg JoinConfig) (*Credentials, error) {
	wantHash, secret, err := pki.ParseJoinToken(cfg.Token)
	if err != nil {
		return nil, err
	}
	if cfg.NodeName == "" {
		return nil, errors.New("join: node name is required")
	}
	if cfg.Dir == "" {
		return nil, errors.New("join: dir is required")
	}
	servers, err := normalizeServers(cfg.Servers)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "join")
	c, err := load(cfg.Dir, wantHash, cfg.NodeName, cfg.NodeIP)
	if err == nil {
		c.Reused = true
		c.Servers = mergeServers(servers, c.Servers)
		c.dialer = newFailoverDialer(hostPorts(c.Servers))
		return c, nil
	}
	reason := err.Error()
	if errors.Is(err, fs.ErrNotExist) {
		reason = "no saved credentials"
	}
	log.Info("joining", "node", cfg.NodeName, "reason", reason)
	if cfg.NodeIP == "" {
		return nil, errors.New("join: node IP is required to join")
	}

	clientKey, clientCSR, err := pki.NewCSR(NodeUserPrefix + cfg.NodeName)
	if err != nil {
		return nil, err
	}
	servingKey, servingCSR, err := pki.NewCSR(NodeUserPrefix + cfg.NodeName)
	if err != nil {
		return nil, err
	}
	password, err := nodePassword(cfg.Dir)
	if err != nil {
		return nil, err
	}
	req := Request{NodeName: cfg.NodeName, NodeIP: cfg.NodeIP, ClientCSR: string(clientCSR), ServingCSR: string(servingCSR), NodePassword: password}

	var errs []error
	for _, server := range servers {
		resp, ca, err := joinServer(ctx, server, wantHash, secret, req)
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return nil, fatal.err
		}
		if err != nil {
			log.Warn("server did not answer the join", "server", server, "err", err)
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c := &Credentials{
			Info:           resp.Info,
			CACertPEM:      []byte(resp.CACert),
			ClientCertPEM:  []byte(resp.ClientCert),
			ClientKeyPEM:   clientKey,
			servingCertPEM: []byte(resp.ServingCert),
			servingKeyPEM:  servingKey,
			password:       password,
		}
		if c.NodeName != cfg.NodeName || c.NodeIP != req.NodeIP {
			return nil, fmt.Errorf("join at %s: answered for node %q (%s), asked for %q (%s)", server, c.NodeName, c.NodeIP, cfg.NodeName, cfg.NodeIP)
		}
		if err := c.check(ca, time.Now()); err != nil {
			return nil, fmt.Errorf("join at %s: %w", server, err)
		}
		c.Servers = mergeServers(servers, c.Servers)
		if err := c.save(cfg.Dir); err != nil {
			return nil, err
		}
		c.dialer = newFailoverDialer(hostPorts(c.Servers))
		return c, nil
	}
	return nil, fmt.Errorf("join: %w: %w", ErrUnreachable, errors.Join(errs...))
}

// fatalError ends Join without trying other servers: a CA that is not the
// token's, or a server that refuses the token.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// joinServer joins at one server. The secret is sent only after the CA
// check, and only to a server verified against that CA.
func joinServer(ctx context.Context, server, wantHash, secret string, req Request) (*Response, *x509.Certificate, error) {
	ca, err := fetchCA(ctx, server)
	if err != nil {
		return nil, nil, err
	}
	if got := pki.CertHash(ca); got != wantHash {
		return nil, nil, &fatalError{fmt.Errorf("server CA hash %s does not match the token's %s: this is not the server the token is for (or the token is wrong); nothing was sent", got, wantHash)}
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := httpClient(&tls.Config{RootCAs: roots, ServerName: ServerName, MinVersion: tls.VersionTLS12})
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("encode join request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, server+JoinPath, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer "+secret)
	resp, err := client.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("join at %s: %w", server, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("join at %s: read answer: %w", server, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, nil, &fatalError{fmt.Errorf("join at %s: the server refused the token's secret (401 Unauthorized)", server)}
	case resp.StatusCode/100 == 4:
		return nil, nil, &fatalError{fmt.Errorf("join at %s: %s: %s", server, resp.Status, strings.TrimSpace(string(answer)))}
	case resp.StatusCode != http.StatusOK:
		return nil, nil, fmt.Errorf("join at %s: %s: %s", server, resp.Status, strings.TrimSpace(string(answer)))
	}
	var out Response
	if err := json.Unmarshal(answer, &out); err != nil {
		return nil, nil, fmt.Errorf("join at %s: decode answer: %w", server, err)
	}
	// The CA in the answer must be the pinned one, not merely any.
	if got, err := pki.ParseCertPEM([]byte(out.CACert)); err != nil || !got.Equal(ca) {
		return nil, nil, &fatalError{fmt.Errorf("join at %s: the answer's CA is not the one /cacerts served", server)}
	}
	return &out, ca, nil
}

// fetchCA gets the server's CA certificate without verifying the server:
// the caller checks it against the token's hash before trusting it.
func fetchCA(ctx context.Context, server string) (*x509.Certificate, error) {
	client := httpClient(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // pinned by the token's hash
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+CACertsPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s%s: %w", server, CACertsPath, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("get %s%s: %w", server, CACertsPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s%s: %s", server, CACertsPath, resp.Status)
	}
	ca, err := pki.ParseCertPEM(body)
	if err != nil {
		return nil, fmt.Errorf("get %s%s: %w", server, CACertsPath, err)
	}
	return ca, nil
}

// httpClient is a one-shot client: no proxy (servers are reached
// directly), no connection reuse across the insecure and the verified
// phase.
func httpClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     tc,
			DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
			TLSHandshakeTimeout: dialTimeout,
			DisableKeepAlives:   true,
		},
		// A redirect would send the secret elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// RESTConfig is a client-go config for the node: its client certificate,
// the cluster CA, and every server, failing over between them (the last
// one that answered is dialed first). Each call returns a new config
// sharing the dialer.
func (c *Credentials) RESTConfig() *rest.Config {
	if c.dialer == nil {
		c.dialer = newFailoverDialer(hostPorts(c.Servers))
	}
	return &rest.Config{
		// The dialer picks the server; Host only names the API.
		Host: c.Servers[0],
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: ServerName,
			CAData:     c.CACertPEM,
			CertData:   c.ClientCertPEM,
			KeyData:    c.ClientKeyPEM,
		},
		Dial:      c.dialer.DialContext,
		UserAgent: "kiln-agent/" + c.NodeName,
	}
}

// normalizeServers turns "host", "host:port" and "https://host[:port]"
// into "https://host:port", keeping the order and dropping duplicates.
func normalizeServers(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		for _, s := range strings.Split(s, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			n, err := normalizeServer(s)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("join: at least one server is required")
	}
	return out, nil
}

func normalizeServer(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		// Not echoed: it would show the password.
		return "", fmt.Errorf("server %s: want https://HOST[:PORT], without credentials", u.Redacted())
	}
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("server %q: want https://HOST[:PORT]", s)
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	}
	return "https://" + net.JoinHostPort(u.Hostname(), port), nil
}

// mergeServers is given followed by the learnt servers not in it; learnt
// ones that do not parse are dropped.
func mergeServers(given, learnt []string) []string {
	out := slices.Clone(given)
	for _, s := range learnt {
		if n, err := normalizeServer(s); err == nil && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// hostPorts strips the scheme of normalized server URLs.
func hostPorts(servers []string) []string {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		out = append(out, strings.TrimPrefix(s, "https://"))
	}
	return out
}
