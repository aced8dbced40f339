package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const flagsTestFile = `
dataDir: /file/data
apiListen: 0.0.0.0:6443
logLevel: warn
disable: [dashboard]
datastore:
  endpoints: [https://file:2379]
  compactRetention: 7
sources:
- kind: dir
  path: /file/manifests
`

func TestFlags_Apply(t *testing.T) {
	fromFile := func(t *testing.T) *Config {
		c, err := Load(writeFile(t, flagsTestFile))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name    string
		args    []string
		want    func(c *Config) // edits the file's config into the expected one
		wantErr string
	}{
		{name: "no flags keep the file", args: nil, want: func(c *Config) {}},
		{
			name: "scalar flags override only what they name",
			args: []string{"--api-listen=127.0.0.1:7443", "--node-name", "n1", "--log-level=debug", "--data-dir", "/flag/data"},
			want: func(c *Config) {
				c.APIListen, c.NodeName, c.LogLevel, c.DataDir = "127.0.0.1:7443", "n1", "debug", "/flag/data"
			},
		},
		{
			name: "every scalar flag",
			args: []string{
				"--dashboard-listen=:9090", "--cluster-cidr=10.50.0.0/16", "--service-cidr=10.51.0.0/16",
				"--cluster-dns=10.51.0.53", "--node-port-range=31000-31999",
				"--datastore-cafile=/ca", "--datastore-certfile=/crt", "--datastore-keyfile=/key",
				"--datastore-compact-interval=-1s", "--datastore-compact-retention=99", "--datastore-compact-min-age=1m",
				"--token=s3cr3t-s3cr3t-s3cr3t", "--leader-elect-lease-duration=20s", "--leader-elect-renew-deadline=15s",
				"--leader-elect-retry-period=3s", "--container-log-max-size=50Mi", "--container-log-max-files=3",
				"--ingress-listen=", "--ingress-tls-listen=10.0.0.1:8443",
			},
			want: func(c *Config) {
				c.DashboardListen, c.ClusterCIDR, c.ServiceCIDR = ":9090", "10.50.0.0/16", "10.51.0.0/16"
				c.ClusterDNS, c.NodePortRange = "10.51.0.53", "31000-31999"
				c.Datastore.CAFile, c.Datastore.CertFile, c.Datastore.KeyFile = "/ca", "/crt", "/key"
				c.Datastore.CompactInterval = Duration{-time.Second}
				c.Datastore.CompactRetention = 99
				c.Datastore.CompactMinAge = Duration{time.Minute}
				c.Token = "s3cr3t-s3cr3t-s3cr3t"
				c.LeaderElection = LeaderElection{Duration{20 * time.Second}, Duration{15 * time.Second}, Duration{3 * time.Second}}
				c.ContainerLogMaxSize, c.ContainerLogMaxFiles = "50Mi", 3
				c.IngressListen, c.IngressTLSListen = ptrTo(""), ptrTo("10.0.0.1:8443")
			},
		},
		{
			name: "flag set to the default value still overrides",
			args: []string{"--api-listen=" + DefaultAPIListen},
			want: func(c *Config) { c.APIListen = DefaultAPIListen },
		},
		{
			name: "disable list replaces the file's",
			args: []string{"--disable", "kubelet, proxy", "--disable=sync"},
			want: func(c *Config) { c.Disable = []string{"kubelet", "proxy", "sync"} },
		},
		{
			name: "empty disable clears the file's",
			args: []string{"--disable="},
			want: func(c *Config) { c.Disable = []string{} },
		},
		{
			name: "datastore endpoints replace the file's",
			args: []string{"--datastore-endpoint=https://a:2379,https://b:2379"},
			want: func(c *Config) { c.Datastore.Endpoints = []string{"https://a:2379", "https://b:2379"} },
		},
		{
			name: "sources replace the file's, in order",
			args: []string{"--source", "git:https://h/o/app.git#main//deploy", "--source=dir:/srv/extra,stuff"},
			want: func(c *Config) {
				c.Sources = []Source{
					{Name: "app", Kind: "git", URL: "https://h/o/app.git", Ref: "main", Subpath: "deploy"},
					{Name: "extra-stuff", Kind: "dir", Path: "/srv/extra,stuff"},
				}
			},
		},
		{
			name:    "bad source",
			args:    []string{"--source=svn:x", "--source=dir:/ok", "--source=hg:y"},
			wantErr: `--source "svn:x"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("kiln", pflag.ContinueOnError)
			var base Config
			flags := base.BindFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatalf("parse: %v", err)
			}
			c := fromFile(t)
			err := flags.Apply(fs, c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `"hg:y"`) {
					t.Fatalf("Apply error = %v, want %q and every bad value", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := fromFile(t)
			tc.want(want)
			if !reflect.DeepEqual(c, want) {
				t.Errorf("Apply =\n%+v\nwant\n%+v", c, want)
			}
		})
	}
}

func TestConfig_BindFlags(t *testing.T) {
	t.Run("help shows built-in defaults", func(t *testing.T) {
		fs := pflag.NewFlagSet("kiln", pflag.ContinueOnError)
		(&Config{}).BindFlags(fs)
		for name, want := range map[string]string{
			"data-dir": DefaultDataDir, "api-listen": DefaultAPIListen, "dashboard-listen": DefaultDashboardListen,
			"cluster-cidr": DefaultClusterCIDR, "service-cidr": DefaultServiceCIDR, "cluster-dns": DefaultClusterDNS,
			"node-port-range": DefaultNodePortRange, "log-level": DefaultLogLevel,
			"ingress-listen": DefaultIngressListen, "ingress-tls-listen": DefaultIngressTLSListen,
			"datastore-compact-interval": "1m0s", "datastore-compact-retention": "10000", "datastore-compact-min-age": "5m0s",
		} {
			f := fs.Lookup(name)
			if f == nil {
				t.Errorf("flag --%s not registered", name)
				continue
			}
			if f.DefValue != want {
				t.Errorf("--%s default = %q, want %q", name, f.DefValue, want)
			}
		}
		for _, name := range []string{"disable", "source", "node-name", "datastore-endpoint", "datastore-cafile", "datastore-certfile", "datastore-keyfile"} {
			if fs.Lookup(name) == nil {
				t.Errorf("flag --%s not registered", name)
			}
		}
	})
	t.Run("help shows the given config", func(t *testing.T) {
		fs := pflag.NewFlagSet("kiln", pflag.ContinueOnError)
		c := &Config{APIListen: "0.0.0.0:1", Token: "SECRET-SECRET-SECRET"}
		c.BindFlags(fs)
		if got := fs.Lookup("api-listen").DefValue; got != "0.0.0.0:1" {
			t.Errorf("--api-listen default = %q", got)
		}
		if got := fs.Lookup("token").DefValue; got != "" {
			t.Errorf("--token help shows the config's secret %q", got)
		}
		if c.DataDir != "" {
			t.Errorf("BindFlags modified the config")
		}
	})
}
