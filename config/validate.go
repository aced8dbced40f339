package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"kiln.dev/kiln/components/apiserver/pki"
)

// Validate checks a defaulted Config (call SetDefaults first: empty required
// fields are errors). It reports every problem at once, joined with
// errors.Join, each naming its field as written in kiln.yaml, e.g.
// `apiListen: "abc": missing port in address` or `sources[1].kind: ...`.
// It does not touch the filesystem or the network.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}

	if c.DataDir == "" {
		add("dataDir", "required")
	}
	if c.NodeName == "" {
		add("nodeName", "required")
	} else if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		add("nodeName", "%q: %s", c.NodeName, strings.Join(msgs, "; "))
	}
	if c.PushWait.Duration < 0 {
		add("pushWait", "must not be negative, got %s", c.PushWait)
	}
	if !slices.Contains(logLevels(), c.LogLevel) {
		add("logLevel", "unknown level %q (want one of %s)", c.LogLevel, strings.Join(logLevels(), ", "))
	}
	for i, comp := range c.Disable {
		if !slices.Contains(Components(), comp) {
			add(fmt.Sprintf("disable[%d]", i), "unknown component %q (want one of %s)", comp, strings.Join(Components(), ", "))
		}
	}

	apiHost, apiPort, apiErr := validateListen(c.APIListen)
	if apiErr != nil {
		add("apiListen", "%w", apiErr)
	}
	dashHost, dashPort, dashErr := validateListen(c.DashboardListen)
	if dashErr != nil {
		add("dashboardListen", "%w", dashErr)
	}
	if apiErr == nil && dashErr == nil && !c.Disabled(ComponentDashboard) &&
		apiPort != 0 && apiPort == dashPort && (apiHost == dashHost || isWildcard(apiHost) || isWildcard(dashHost)) {
		add("dashboardListen", "%q conflicts with apiListen %q", c.DashboardListen, c.APIListen)
	}

	errs = append(errs, c.validateIngress(apiErr == nil, dashErr == nil)...)

	clusterCIDR, clusterErr := parseIPv4CIDR(c.ClusterCIDR)
	if clusterErr != nil {
		add("clusterCIDR", "%w", clusterErr)
	} else if clusterCIDR.Bits() > 24 {
		add("clusterCIDR", "%s is smaller than the /24 each node gets", clusterCIDR)
	}
	serviceCIDR, serviceErr := parseIPv4CIDR(c.ServiceCIDR)
	if serviceErr != nil {
		add("serviceCIDR", "%w", serviceErr)
	} else if serviceCIDR.Bits() < 12 {
		// The ClusterIP allocator keeps a bitmap of the range; Kubernetes
		// sets the same bound.
		add("serviceCIDR", "%s is too large (want /12 or smaller)", serviceCIDR)
	}
	if clusterErr == nil && serviceErr == nil && clusterCIDR.Overlaps(serviceCIDR) {
		add("serviceCIDR", "%s overlaps clusterCIDR %s", serviceCIDR, clusterCIDR)
	}
	if dns, err := netip.ParseAddr(c.ClusterDNS); err != nil || !dns.Is4() {
		add("clusterDNS", "invalid IPv4 address %q", c.ClusterDNS)
	} else if serviceErr == nil {
		switch {
		case !serviceCIDR.Contains(dns):
			add("clusterDNS", "%s is outside serviceCIDR %s", dns, serviceCIDR)
		case dns == serviceCIDR.Addr():
			add("clusterDNS", "%s is the network address of serviceCIDR %s", dns, serviceCIDR)
		case dns == serviceCIDR.Addr().Next():
			// As in Kubernetes, the first address is the kubernetes Service's.
			add("clusterDNS", "%s is reserved for the kubernetes Service", dns)
		case dns == lastAddr(serviceCIDR):
			add("clusterDNS", "%s is the broadcast address of serviceCIDR %s", dns, serviceCIDR)
		}
	}
	if ip, err := netip.ParseAddr(c.NodeIP); err != nil || !ip.Is4() {
		add("nodeIP", "invalid IPv4 address %q", c.NodeIP)
	}
	if c.NodeMonitorGracePeriod.Duration < 0 {
		add("nodeMonitorGracePeriod", "%s is negative", c.NodeMonitorGracePeriod.Duration)
	}
	if c.DefaultNotReadyTolerationSeconds < 0 {
		add("defaultNotReadyTolerationSeconds", "%d is negative", c.DefaultNotReadyTolerationSeconds)
	}
	if c.DefaultUnreachableTolerationSeconds < 0 {
		add("defaultUnreachableTolerationSeconds", "%d is negative", c.DefaultUnreachableTolerationSeconds)
	}
	if _, err := c.ContainerLogMaxBytes(); err != nil {
		add("containerLogMaxSize", "%w", err)
	}
	if c.ContainerLogMaxFiles < 2 {
		add("containerLogMaxFiles", "%d, want at least 2 (the current file and one rotated)", c.ContainerLogMaxFiles)
	}
	if c.KubeletPort < 1 || c.KubeletPort > 65535 {
		add("kubeletPort", "%d is not a port (1-65535)", c.KubeletPort)
	}
	if err := validatePortRange(c.NodePortRange); err != nil {
		add("nodePortRange", "%w", err)
	}

	errs = append(errs, c.Datastore.validate("datastore")...)
	if c.Token != "" {
		// pki's errors never contain the secret.
		if _, err := pki.JoinSecret(c.Token); err != nil {
			add("token", "%w", err)
		}
	} else if len(c.Datastore.Endpoints) > 0 {
		// Only the first server of a shared datastore could do without
		// one, and no server can tell whether it is the first.
		add("token", "required with datastore.endpoints: every server sharing a datastore must be given the same --token")
	}
	le := c.LeaderElection
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"leaseDuration", le.LeaseDuration.Duration}, {"renewDeadline", le.RenewDeadline.Duration}, {"retryPeriod", le.RetryPeriod.Duration}} {
		if f.d <= 0 {
			add("leaderElection."+f.name, "must be positive, got %s", f.d)
		}
	}
	// client-go's own checks: a leader must give up before its Lease
	// can be taken, and retry at least once (with 1.2 jitter) before.
	if le.RenewDeadline.Duration > 0 && le.LeaseDuration.Duration <= le.RenewDeadline.Duration {
		add("leaderElection.renewDeadline", "%s must be less than leaseDuration %s", le.RenewDeadline.Duration, le.LeaseDuration.Duration)
	}
	if le.RetryPeriod.Duration > 0 && le.RenewDeadline.Duration <= time.Duration(1.2*float64(le.RetryPeriod.Duration)) {
		add("leaderElection.retryPeriod", "%s must be less than renewDeadline %s / 1.2", le.RetryPeriod.Duration, le.RenewDeadline.Duration)
	}

	names := map[string]int{}
	for i, s := range c.Sources {
		field := fmt.Sprintf("sources[%d]", i)
		errs = append(errs, s.validate(field)...)
		if s.Name == "" {
			continue
		}
		if j, dup := names[s.Name]; dup {
			add(field+".name", "duplicate name %q (also sources[%d]); give each source a distinct name", s.Name, j)
		} else {
			names[s.Name] = i
		}
	}
	return errors.Join(errs...)
}

func (d *Datastore) validate(field string) []error {
	var errs []error
	add := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{field, f}, args...)...))
	}
	for i, e := range d.Endpoints {
		if err := validateEtcdEndpoint(e); err != nil {
			add(fmt.Sprintf("endpoints[%d]", i), "%w", err)
		}
	}
	if len(d.Endpoints) == 0 {
		for _, f := range []struct{ name, value string }{{"caFile", d.CAFile}, {"certFile", d.CertFile}, {"keyFile", d.KeyFile}} {
			if f.value != "" {
				add(f.name, "only applies with %s.endpoints (an external etcd)", field)
			}
		}
	}
	if d.CertFile != "" && d.KeyFile == "" {
		add("keyFile", "required with %s.certFile", field)
	}
	if d.KeyFile != "" && d.CertFile == "" {
		add("certFile", "required with %s.keyFile", field)
	}
	// A negative CompactInterval disables compaction (store.Config agrees).
	if d.CompactRetention <= 0 {
		add("compactRetention", "must be positive, got %d", d.CompactRetention)
	}
	if d.CompactMinAge.Duration < 0 {
		add("compactMinAge", "must not be negative, got %s", d.CompactMinAge)
	}
	return errs
}

func (s *Source) validate(field string) []error {
	var errs []error
	add := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: "+format, append([]any{field, f}, args...)...))
	}
	onlyGit := func(f, v string) {
		if v != "" {
			add(f, "only applies to kind %q", SourceKindGit)
		}
	}

	if s.Name == "" {
		add("name", "required")
	} else if msgs := validation.IsDNS1123Label(s.Name); len(msgs) > 0 {
		add("name", "%q: %s", s.Name, strings.Join(msgs, "; "))
	}
	switch s.Kind {
	case SourceKindDir:
		if s.Path == "" {
			add("path", "required for kind %q", SourceKindDir)
		}
		onlyGit("url", s.URL)
		onlyGit("ref", s.Ref)
		onlyGit("credentialsFile", s.CredentialsFile)
		onlyGit("webhookSecretFile", s.WebhookSecretFile)
		if s.Interval.Duration != 0 {
			add("interval", "only applies to kind %q (a dir source watches for changes)", SourceKindGit)
		}
	case SourceKindHosted:
		for _, f := range []struct{ name, value string }{{"path", s.Path}, {"url", s.URL}, {"credentialsFile", s.CredentialsFile}, {"webhookSecretFile", s.WebhookSecretFile}} {
			if f.value != "" {
				add(f.name, "does not apply to kind %q (kiln keeps the repository)", SourceKindHosted)
			}
		}
		if s.Interval.Duration != 0 {
			add("interval", "does not apply to kind %q (a push deploys at once)", SourceKindHosted)
		}
		if s.Ref != "" && (strings.HasPrefix(s.Ref, "refs/") || validateRef(s.Ref) != nil) {
			add("ref", "%q: want a branch name, like main", s.Ref)
		}
	case SourceKindGit:
		if s.Path != "" {
			add("path", "only applies to kind %q (use subpath for a directory in the repo)", SourceKindDir)
		}
		if s.URL == "" {
			add("url", "required for kind %q", SourceKindGit)
		} else if err := validateGitURL(s.URL); err != nil {
			add("url", "%w", err)
		}
		if s.Ref != "" {
			if err := validateRef(s.Ref); err != nil {
				add("ref", "%w", err)
			}
		}
		if s.Interval.Duration <= 0 {
			add("interval", "must be positive, got %s", s.Interval)
		}
	case "":
		add("kind", "required (want %q, %q or %q)", SourceKindDir, SourceKindGit, SourceKindHosted)
	default:
		add("kind", "unknown kind %q (want %q, %q or %q)", s.Kind, SourceKindDir, SourceKindGit, SourceKindHosted)
	}
	if s.Subpath != "" {
		if p := path.Clean(s.Subpath); path.IsAbs(s.Subpath) || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(s.Subpath, `\`) {
			add("subpath", "%q must be a relative path inside the source", s.Subpath)
		}
	}
	if msgs := validation.IsDNS1123Label(s.Namespace); len(msgs) > 0 {
		add("namespace", "%q: %s", s.Namespace, strings.Join(msgs, "; "))
	}
	if s.Rollback != RollbackNone && s.Rollback != RollbackAuto {
		add("rollback", "unknown policy %q (want %q or %q)", s.Rollback, RollbackNone, RollbackAuto)
	}
	if s.Drift != DriftRevert && s.Drift != DriftIgnore {
		add("drift", "unknown policy %q (want %q or %q)", s.Drift, DriftRevert, DriftIgnore)
	}
	return errs
}

// validateListen checks a host:port and returns the host and port.
func validateListen(addr string) (string, uint64, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			return "", 0, fmt.Errorf("%q: %s", addr, ae.Err)
		}
		return "", 0, fmt.Errorf("%q: %w", addr, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: invalid port %q", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && len(validation.IsDNS1123Subdomain(strings.ToLower(host))) > 0 {
		return "", 0, fmt.Errorf("%q: invalid host %q", addr, host)
	}
	return host, n, nil
}

// validateIngress checks the ingress addresses ("" is off) and that the
// ones the proxy opens do not take the API's or the dashboard's port
// (checked only when those are valid).
func (c *Config) validateIngress(apiOK, dashOK bool) []error {
	var errs []error
	type addr struct {
		field, value string
		host         string
		port         uint64
	}
	var opened []addr
	listen, tlsListen := c.Ingress()
	for _, a := range []addr{{field: "ingressListen", value: listen}, {field: "ingressTLSListen", value: tlsListen}} {
		if a.value == "" {
			continue
		}
		host, port, err := validateListen(a.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.field, err))
			continue
		}
		a.host, a.port = host, port
		opened = append(opened, a)
	}
	if c.Disabled(ComponentProxy) {
		return errs
	}
	others := opened
	if apiOK {
		h, p, _ := validateListen(c.APIListen)
		others = append(others, addr{field: "apiListen", value: c.APIListen, host: h, port: p})
	}
	if dashOK && !c.Disabled(ComponentDashboard) {
		h, p, _ := validateListen(c.DashboardListen)
		others = append(others, addr{field: "dashboardListen", value: c.DashboardListen, host: h, port: p})
	}
	for i, a := range opened {
		for _, b := range others[i+1:] {
			if a.port != 0 && a.port == b.port && (a.host == b.host || isWildcard(a.host) || isWildcard(b.host)) {
				errs = append(errs, fmt.Errorf("%s: %q conflicts with %s %q", a.field, a.value, b.field, b.value))
			}
		}
	}
	return errs
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

func parseIPv4CIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: only IPv4 is supported", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, p.Masked())
	}
	return p, nil
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom4(a)
}

func validatePortRange(s string) error {
	lo, hi, ok := strings.Cut(s, "-")
	from, err1 := strconv.Atoi(lo)
	to, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || strings.ContainsAny(s, "+ ") {
		return fmt.Errorf("%q: want FROM-TO, e.g. %s", s, DefaultNodePortRange)
	}
	if from < 1 || to > 65535 {
		return fmt.Errorf("%q: ports must be within 1-65535", s)
	}
	if from > to {
		return fmt.Errorf("%q: start is after end", s)
	}
	return nil
}

func validateEtcdEndpoint(e string) error {
	u, err := url.Parse(e)
	if err != nil {
		return fmt.Errorf("invalid URL %q", redactURL(e))
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q: missing host", redactURL(e))
		}
	case "unix", "unixs":
	default:
		return fmt.Errorf("%q: unsupported scheme (want http, https, unix or unixs)", redactURL(e))
	}
	if u.User != nil {
		return fmt.Errorf("%q: must not contain credentials", redactURL(e))
	}
	return nil
}

// validateGitURL accepts what go-git clones: scheme URLs and scp-like
// user@host:path. Credentials belong in credentialsFile: a URL ends up in
// the Source's status and in logs.
func validateGitURL(s string) error {
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%q: contains whitespace", redactURL(s))
	}
	if !strings.Contains(s, "://") {
		// scp-like: [user@]host:path, host without "/".
		host, p, ok := strings.Cut(s, ":")
		if !ok || host == "" || p == "" || strings.Contains(host, "/") {
			return fmt.Errorf("%q: want https://, http://, ssh://, git://, file:// or user@host:path", s)
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q", redactURL(s))
	}
	switch u.Scheme {
	case "https", "http", "git":
		if u.User != nil {
			return fmt.Errorf("%q: must not contain credentials; use credentialsFile", redactURL(s))
		}
	case "ssh":
		if _, ok := u.User.Password(); ok {
			return fmt.Errorf("%q: must not contain a password; use credentialsFile", redactURL(s))
		}
	case "file":
		if u.Path == "" {
			return fmt.Errorf("%q: missing path", s)
		}
		return nil
	default:
		return fmt.Errorf("%q: unsupported scheme %q (want https, http, ssh, git or file)", redactURL(s), u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: missing host", redactURL(s))
	}
	return nil
}

// validateRef rejects what git check-ref-format rejects that could also
// confuse a command line; the remote has the final word.
func validateRef(ref string) error {
	if strings.HasPrefix(ref, "-") || strings.Contains(ref, "..") || strings.Contains(ref, "//") ||
		strings.IndexFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 ||
		strings.ContainsAny(ref, "~^:?*[\\") {
		return fmt.Errorf("invalid ref %q", ref)
	}
	return nil
}

// ContainerLogMaxBytes is ContainerLogMaxSize in bytes.
func (c *Config) ContainerLogMaxBytes() (int64, error) {
	q, err := resource.ParseQuantity(c.ContainerLogMaxSize)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size such as 10Mi", c.ContainerLogMaxSize)
	}
	n, ok := q.AsInt64()
	if !ok || n < 1024 {
		return 0, fmt.Errorf("%q: want at least 1Ki", c.ContainerLogMaxSize)
	}
	return n, nil
}
