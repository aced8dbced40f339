package config

import (
	"strings"
	"testing"
	"time"
)

// validConfig is a defaulted Config with one source of each kind.
func validConfig(t *testing.T) *Config {
	t.Helper()
	c := &Config{NodeName: "node-1", Sources: []Source{
		{Kind: SourceKindDir, Path: "/srv/manifests"},
		{Kind: SourceKindGit, URL: "https://example.com/org/repo.git", Ref: "main", Subpath: "deploy/prod"},
	}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("base config invalid: %v", err)
	}
	return c
}

func TestConfig_Validate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantErr []string // substrings; empty means valid
	}{
		{name: "defaults", mutate: func(c *Config) {}},
		{name: "listen on all interfaces", mutate: func(c *Config) { c.APIListen = ":6443"; c.DashboardListen = "[::]:8080" }},
		{name: "listen port 0 twice", mutate: func(c *Config) { c.APIListen = "127.0.0.1:0"; c.DashboardListen = "127.0.0.1:0" }},
		{name: "listen on localhost", mutate: func(c *Config) { c.APIListen = "localhost:6443" }},
		{name: "negative compactInterval disables", mutate: func(c *Config) { c.Datastore.CompactInterval = Duration{-1} }},
		{name: "external etcd with TLS", mutate: func(c *Config) {
			c.Datastore.Endpoints = []string{"https://10.0.0.1:2379", "unix:///run/etcd.sock"}
			c.Datastore.CAFile, c.Datastore.CertFile, c.Datastore.KeyFile = "/ca", "/crt", "/key"
			c.Token = "0123456789abcdef0123"
		}},
		{name: "whole join token", mutate: func(c *Config) {
			c.Token = "K10" + strings.Repeat("ab", 32) + "::node:" + strings.Repeat("5", 64)
		}},
		{name: "leader election timings", mutate: func(c *Config) {
			c.LeaderElection = LeaderElection{Duration{15 * time.Second}, Duration{10 * time.Second}, Duration{2 * time.Second}}
		}},
		{name: "scp-like git url", mutate: func(c *Config) { c.Sources[1].URL = "git@github.com:org/repo.git" }},
		{name: "ssh url with user", mutate: func(c *Config) { c.Sources[1].URL = "ssh://git@host/repo.git" }},
		{name: "file url", mutate: func(c *Config) { c.Sources[1].URL = "file:///tmp/repo" }},
		{name: "no sources", mutate: func(c *Config) { c.Sources = nil }},
		{name: "ingress off", mutate: func(c *Config) { c.IngressListen, c.IngressTLSListen = ptrTo(""), ptrTo("") }},
		{name: "proxy disabled may share ingress ports", mutate: func(c *Config) {
			c.IngressListen = ptrTo(c.APIListen)
			c.Disable = []string{ComponentProxy}
		}},
		{name: "ingressListen missing port", mutate: func(c *Config) { c.IngressListen = ptrTo("0.0.0.0") },
			wantErr: []string{`ingressListen: "0.0.0.0": missing port`}},
		{name: "ingress on the API port", mutate: func(c *Config) { c.IngressTLSListen = ptrTo(":6443") },
			wantErr: []string{`ingressTLSListen: ":6443" conflicts with apiListen "127.0.0.1:6443"`}},
		{name: "ingress HTTP and HTTPS on one port", mutate: func(c *Config) { c.IngressTLSListen = ptrTo("127.0.0.1:80") },
			wantErr: []string{`ingressListen: "0.0.0.0:80" conflicts with ingressTLSListen "127.0.0.1:80"`}},
		{name: "dashboard disabled may share the API address", mutate: func(c *Config) {
			c.DashboardListen = c.APIListen
			c.Disable = []string{ComponentDashboard}
		}},

		{name: "empty dataDir", mutate: func(c *Config) { c.DataDir = "" }, wantErr: []string{"dataDir: required"}},
		{name: "empty nodeName", mutate: func(c *Config) { c.NodeName = "" }, wantErr: []string{"nodeName: required"}},
		{name: "bad nodeName", mutate: func(c *Config) { c.NodeName = "Node_1" }, wantErr: []string{`nodeName: "Node_1"`}},
		{name: "bad containerLogMaxSize", mutate: func(c *Config) { c.ContainerLogMaxSize = "ten megs" },
			wantErr: []string{`containerLogMaxSize: "ten megs" is not a size such as 10Mi`}},
		{name: "tiny containerLogMaxSize", mutate: func(c *Config) { c.ContainerLogMaxSize = "100" },
			wantErr: []string{`containerLogMaxSize: "100": want at least 1Ki`}},
		{name: "one containerLogMaxFiles", mutate: func(c *Config) { c.ContainerLogMaxFiles = 1 },
			wantErr: []string{`containerLogMaxFiles: 1, want at least 2`}},
		{name: "bad logLevel", mutate: func(c *Config) { c.LogLevel = "trace" }, wantErr: []string{`logLevel: unknown level "trace" (want one of debug, info, warn, error)`}},
		{name: "unknown component", mutate: func(c *Config) { c.Disable = []string{"kubelet", "foo"} },
			wantErr: []string{`disable[1]: unknown component "foo" (want one of kubelet, proxy, scheduler, controllers, dashboard, sync)`}},
		{name: "apiListen missing port", mutate: func(c *Config) { c.APIListen = "abc" }, wantErr: []string{`apiListen: "abc": missing port`}},
		{name: "apiListen bad port", mutate: func(c *Config) { c.APIListen = "127.0.0.1:http" }, wantErr: []string{`apiListen: "127.0.0.1:http": invalid port "http"`}},
		{name: "apiListen port out of range", mutate: func(c *Config) { c.APIListen = "127.0.0.1:70000" }, wantErr: []string{`apiListen: "127.0.0.1:70000": invalid port`}},
		{name: "apiListen bad host", mutate: func(c *Config) { c.APIListen = "bad_host!:1" }, wantErr: []string{`apiListen: "bad_host!:1": invalid host`}},
		{name: "dashboardListen missing port", mutate: func(c *Config) { c.DashboardListen = "localhost" }, wantErr: []string{`dashboardListen: "localhost": missing port`}},
		{name: "dashboard on API address", mutate: func(c *Config) { c.DashboardListen = "0.0.0.0:6443" }, wantErr: []string{`dashboardListen: "0.0.0.0:6443" conflicts with apiListen "127.0.0.1:6443"`}},
		{name: "clusterCIDR invalid", mutate: func(c *Config) { c.ClusterCIDR = "10.42.0.0" }, wantErr: []string{`clusterCIDR: invalid CIDR "10.42.0.0"`}},
		{name: "clusterCIDR IPv6", mutate: func(c *Config) { c.ClusterCIDR = "fd00::/48" }, wantErr: []string{`clusterCIDR: "fd00::/48": only IPv4`}},
		{name: "clusterCIDR host bits", mutate: func(c *Config) { c.ClusterCIDR = "10.42.1.0/16" }, wantErr: []string{`clusterCIDR: "10.42.1.0/16" has host bits set (did you mean 10.42.0.0/16?)`}},
		{name: "clusterCIDR too small", mutate: func(c *Config) { c.ClusterCIDR = "10.42.0.0/25" }, wantErr: []string{"clusterCIDR: 10.42.0.0/25 is smaller than the /24"}},
		{name: "serviceCIDR invalid", mutate: func(c *Config) { c.ServiceCIDR = "abc" }, wantErr: []string{`serviceCIDR: invalid CIDR "abc"`}},
		{name: "serviceCIDR IPv6", mutate: func(c *Config) { c.ServiceCIDR = "fd01::/108" }, wantErr: []string{`serviceCIDR: "fd01::/108": only IPv4`}},
		{name: "serviceCIDR too large", mutate: func(c *Config) {
			c.ServiceCIDR = "10.0.0.0/8"
			c.ClusterCIDR = "192.168.0.0/16"
			c.ClusterDNS = "10.0.0.10"
		},
			wantErr: []string{"serviceCIDR: 10.0.0.0/8 is too large"}},
		{name: "CIDRs overlap", mutate: func(c *Config) { c.ServiceCIDR = "10.42.128.0/17"; c.ClusterDNS = "10.42.128.10" },
			wantErr: []string{"serviceCIDR: 10.42.128.0/17 overlaps clusterCIDR 10.42.0.0/16"}},
		{name: "clusterDNS invalid", mutate: func(c *Config) { c.ClusterDNS = "dns" }, wantErr: []string{`clusterDNS: invalid IPv4 address "dns"`}},
		{name: "clusterDNS IPv6", mutate: func(c *Config) { c.ClusterDNS = "fd01::10" }, wantErr: []string{`clusterDNS: invalid IPv4 address "fd01::10"`}},
		{name: "clusterDNS outside serviceCIDR", mutate: func(c *Config) { c.ClusterDNS = "10.44.0.10" }, wantErr: []string{"clusterDNS: 10.44.0.10 is outside serviceCIDR 10.43.0.0/16"}},
		{name: "clusterDNS network address", mutate: func(c *Config) { c.ClusterDNS = "10.43.0.0" }, wantErr: []string{"clusterDNS: 10.43.0.0 is the network address"}},
		{name: "clusterDNS kubernetes service", mutate: func(c *Config) { c.ClusterDNS = "10.43.0.1" }, wantErr: []string{"clusterDNS: 10.43.0.1 is reserved"}},
		{name: "clusterDNS broadcast", mutate: func(c *Config) { c.ClusterDNS = "10.43.255.255" }, wantErr: []string{"clusterDNS: 10.43.255.255 is the broadcast address"}},
		{name: "nodePortRange format", mutate: func(c *Config) { c.NodePortRange = "30000" }, wantErr: []string{`nodePortRange: "30000": want FROM-TO, e.g. 30000-32767`}},
		{name: "nodePortRange not numbers", mutate: func(c *Config) { c.NodePortRange = "a-b" }, wantErr: []string{`nodePortRange: "a-b": want FROM-TO`}},
		{name: "nodePortRange zero", mutate: func(c *Config) { c.NodePortRange = "0-100" }, wantErr: []string{`nodePortRange: "0-100": ports must be within 1-65535`}},
		{name: "nodePortRange too high", mutate: func(c *Config) { c.NodePortRange = "30000-70000" }, wantErr: []string{`nodePortRange: "30000-70000": ports must be within 1-65535`}},
		{name: "nodePortRange reversed", mutate: func(c *Config) { c.NodePortRange = "32767-30000" }, wantErr: []string{`nodePortRange: "32767-30000": start is after end`}},

		{name: "datastore bad endpoint scheme", mutate: func(c *Config) { c.Datastore.Endpoints = []string{"10.0.0.1:2379"} }, wantErr: []string{"datastore.endpoints[0]:"}},
		{name: "datastore endpoint without host", mutate: func(c *Config) { c.Datastore.Endpoints = []string{"https://"} }, wantErr: []string{`datastore.endpoints[0]: "https://": missing host`}},
		{name: "datastore endpoint with credentials", mutate: func(c *Config) { c.Datastore.Endpoints = []string{"https://root:secret@h:2379"} },
			wantErr: []string{`datastore.endpoints[0]: "https://xxxxx@h:2379": must not contain credentials`}},
		{name: "datastore TLS without endpoints", mutate: func(c *Config) { c.Datastore.CAFile = "/ca" }, wantErr: []string{"datastore.caFile: only applies with datastore.endpoints"}},
		{name: "datastore cert without key", mutate: func(c *Config) {
			c.Datastore.Endpoints = []string{"https://h:2379"}
			c.Datastore.CertFile = "/crt"
		}, wantErr: []string{"datastore.keyFile: required with datastore.certFile"}},
		{name: "datastore key without cert", mutate: func(c *Config) {
			c.Datastore.Endpoints = []string{"https://h:2379"}
			c.Datastore.KeyFile = "/key"
		}, wantErr: []string{"datastore.certFile: required with datastore.keyFile"}},
		{name: "datastore negative retention", mutate: func(c *Config) { c.Datastore.CompactRetention = -1 }, wantErr: []string{"datastore.compactRetention: must be positive, got -1"}},
		{name: "datastore negative min age", mutate: func(c *Config) { c.Datastore.CompactMinAge = Duration{-time.Second} }, wantErr: []string{"datastore.compactMinAge: must not be negative, got -1s"}},

		{name: "source without name", mutate: func(c *Config) { c.Sources[0].Name = "" }, wantErr: []string{"sources[0].name: required"}},
		{name: "source bad name", mutate: func(c *Config) { c.Sources[0].Name = "My.Source" }, wantErr: []string{`sources[0].name: "My.Source"`}},
		{name: "source without kind", mutate: func(c *Config) { c.Sources[0].Kind = "" }, wantErr: []string{`sources[0].kind: required (want "dir", "git" or "hosted")`}},
		{name: "source unknown kind", mutate: func(c *Config) { c.Sources[1].Kind = "oci" }, wantErr: []string{`sources[1].kind: unknown kind "oci" (want "dir", "git" or "hosted")`}},
		{name: "duplicate source names", mutate: func(c *Config) { c.Sources[1].Name = c.Sources[0].Name }, wantErr: []string{`sources[1].name: duplicate name "manifests" (also sources[0])`}},
		{name: "dir without path", mutate: func(c *Config) { c.Sources[0].Path = "" }, wantErr: []string{`sources[0].path: required for kind "dir"`}},
		{name: "dir with git fields", mutate: func(c *Config) {
			s := &c.Sources[0]
			s.URL, s.Ref, s.CredentialsFile, s.Interval = "https://h/r", "main", "/creds", Duration{time.Second}
		}, wantErr: []string{
			`sources[0].url: only applies to kind "git"`, `sources[0].ref: only applies to kind "git"`,
			`sources[0].credentialsFile: only applies to kind "git"`, `sources[0].interval: only applies to kind "git"`,
		}},
		{name: "dir with webhookSecretFile", mutate: func(c *Config) { c.Sources[0].WebhookSecretFile = "/hook" },
			wantErr: []string{`sources[0].webhookSecretFile: only applies to kind "git"`}},
		{name: "git with webhookSecretFile", mutate: func(c *Config) { c.Sources[1].WebhookSecretFile = "/hook" }},
		{name: "git with path", mutate: func(c *Config) { c.Sources[1].Path = "/x" }, wantErr: []string{`sources[1].path: only applies to kind "dir"`}},
		{name: "git without url", mutate: func(c *Config) { c.Sources[1].URL = "" }, wantErr: []string{`sources[1].url: required for kind "git"`}},
		{name: "git url bad scheme", mutate: func(c *Config) { c.Sources[1].URL = "ftp://h/r.git" }, wantErr: []string{`sources[1].url: "ftp://h/r.git": unsupported scheme "ftp"`}},
		{name: "git url not a url", mutate: func(c *Config) { c.Sources[1].URL = "repo" }, wantErr: []string{`sources[1].url: "repo": want https://`}},
		{name: "git url without host", mutate: func(c *Config) { c.Sources[1].URL = "https:///r.git" }, wantErr: []string{`sources[1].url: "https:///r.git": missing host`}},
		{name: "git url with token", mutate: func(c *Config) { c.Sources[1].URL = "https://ghp_SECRET@github.com/o/r.git" },
			wantErr: []string{`sources[1].url: "https://xxxxx@github.com/o/r.git": must not contain credentials; use credentialsFile`}},
		{name: "git url with password", mutate: func(c *Config) { c.Sources[1].URL = "ssh://git:SECRET@h/r.git" },
			wantErr: []string{`sources[1].url: "ssh://git:xxxxx@h/r.git": must not contain a password`}},
		{name: "git url with space", mutate: func(c *Config) { c.Sources[1].URL = "https://h/r .git" }, wantErr: []string{"sources[1].url:", "whitespace"}},
		{name: "git bad ref", mutate: func(c *Config) { c.Sources[1].Ref = "-main" }, wantErr: []string{`sources[1].ref: invalid ref "-main"`}},
		{name: "git ref with dots", mutate: func(c *Config) { c.Sources[1].Ref = "a..b" }, wantErr: []string{`sources[1].ref: invalid ref "a..b"`}},
		{name: "git negative interval", mutate: func(c *Config) { c.Sources[1].Interval = Duration{-time.Second} }, wantErr: []string{"sources[1].interval: must be positive, got -1s"}},
		{name: "absolute subpath", mutate: func(c *Config) { c.Sources[1].Subpath = "/etc" }, wantErr: []string{`sources[1].subpath: "/etc" must be a relative path inside the source`}},
		{name: "escaping subpath", mutate: func(c *Config) { c.Sources[0].Subpath = "a/../../etc" }, wantErr: []string{`sources[0].subpath: "a/../../etc" must be a relative path`}},
		{name: "bad namespace", mutate: func(c *Config) { c.Sources[0].Namespace = "Kube_System" }, wantErr: []string{`sources[0].namespace: "Kube_System"`}},
		{name: "hosted", mutate: func(c *Config) {
			c.Sources[1] = Source{Name: "app", Kind: "hosted", Ref: "prod", Namespace: "default", Drift: "revert", Rollback: "auto"}
		}},
		{name: "hosted with git fields", mutate: func(c *Config) {
			c.Sources[1] = Source{Name: "app", Kind: "hosted", URL: "https://h/r", Ref: "refs/heads/x", Interval: Duration{time.Second}, Namespace: "default", Drift: "revert", Rollback: "none"}
		}, wantErr: []string{`sources[1].url: does not apply to kind "hosted"`, `sources[1].ref: "refs/heads/x": want a branch name`, `sources[1].interval: does not apply to kind "hosted"`}},
		{name: "bad rollback", mutate: func(c *Config) { c.Sources[0].Rollback = "always" }, wantErr: []string{`sources[0].rollback: unknown policy "always" (want "none" or "auto")`}},
		{name: "bad drift", mutate: func(c *Config) { c.Sources[0].Drift = "warn" }, wantErr: []string{`sources[0].drift: unknown policy "warn" (want "revert" or "ignore")`}},

		{name: "external etcd without token", mutate: func(c *Config) { c.Datastore.Endpoints = []string{"https://10.0.0.1:2379"} },
			wantErr: []string{"token: required with datastore.endpoints"}},
		{name: "token with space", mutate: func(c *Config) { c.Token = "SECRET SECRET SECRET" }, wantErr: []string{"token: join token secret contains whitespace"}},
		{name: "K10 token bad hash", mutate: func(c *Config) { c.Token = "K10abc::node:SECRETSECRETSECRET" },
			wantErr: []string{"token: join token CA hash has 3 characters"}},
		{name: "K10 token empty secret", mutate: func(c *Config) { c.Token = "K10" + strings.Repeat("ab", 32) + "::node:" },
			wantErr: []string{"token: join token secret is empty"}},
		{name: "renewDeadline not below leaseDuration", mutate: func(c *Config) {
			c.LeaderElection = LeaderElection{Duration{5 * time.Second}, Duration{5 * time.Second}, Duration{time.Second}}
		}, wantErr: []string{"leaderElection.renewDeadline: 5s must be less than leaseDuration 5s"}},
		{name: "retryPeriod too long", mutate: func(c *Config) {
			c.LeaderElection = LeaderElection{Duration{8 * time.Second}, Duration{6 * time.Second}, Duration{5 * time.Second}}
		}, wantErr: []string{"leaderElection.retryPeriod: 5s must be less than renewDeadline 6s / 1.2"}},
		{name: "negative leaseDuration", mutate: func(c *Config) { c.LeaderElection.LeaseDuration = Duration{-time.Second} },
			wantErr: []string{"leaderElection.leaseDuration: must be positive, got -1s"}},

		{name: "all problems reported", mutate: func(c *Config) {
			c.APIListen = "abc"
			c.ServiceCIDR = "x"
			c.Disable = []string{"foo"}
			c.Sources[1].Kind = "svn"
		}, wantErr: []string{"apiListen:", "serviceCIDR:", "disable[0]:", "sources[1].kind:"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.mutate(c)
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error leaks a credential: %v", err)
			}
		})
	}
}

func TestConfig_Disabled(t *testing.T) {
	c := &Config{Disable: []string{ComponentKubelet, ComponentSync}}
	for _, comp := range Components() {
		want := comp == ComponentKubelet || comp == ComponentSync
		if got := c.Disabled(comp); got != want {
			t.Errorf("Disabled(%q) = %v, want %v", comp, got, want)
		}
	}
}

func TestConfig_JoinSecret(t *testing.T) {
	tests := []struct{ name, token, want string }{
		{name: "empty", token: "", want: ""},
		{name: "bare secret", token: "0123456789abcdef0123", want: "0123456789abcdef0123"},
		{name: "whole token", token: "K10" + strings.Repeat("ab", 32) + "::node:" + strings.Repeat("5", 64), want: strings.Repeat("5", 64)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Token: tc.token}
			if got := c.JoinSecret(); got != tc.want {
				t.Errorf("JoinSecret() = %q, want %q", got, tc.want)
			}
		})
	}
}
