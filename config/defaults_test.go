package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConfig_SetDefaults(t *testing.T) {
	// SetDefaults leaves NodeName empty when the host has no name; the
	// expectation follows the same rule.
	host, _ := os.Hostname()
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{
			name: "empty",
			in:   Config{},
			want: Config{
				DataDir:                             DefaultDataDir,
				APIListen:                           DefaultAPIListen,
				DashboardListen:                     DefaultDashboardListen,
				IngressListen:                       ptrTo(DefaultIngressListen),
				IngressTLSListen:                    ptrTo(DefaultIngressTLSListen),
				ClusterCIDR:                         DefaultClusterCIDR,
				ServiceCIDR:                         DefaultServiceCIDR,
				ClusterDNS:                          DefaultClusterDNS,
				NodePortRange:                       DefaultNodePortRange,
				NodeName:                            strings.ToLower(host),
				NodeIP:                              defaultNodeIP(),
				KubeletPort:                         DefaultKubeletPort,
				ContainerLogMaxSize:                 DefaultContainerLogMaxSize,
				ContainerLogMaxFiles:                DefaultContainerLogMaxFiles,
				NodeMonitorGracePeriod:              Duration{DefaultNodeMonitorGracePeriod},
				DefaultNotReadyTolerationSeconds:    DefaultTolerationSeconds,
				DefaultUnreachableTolerationSeconds: DefaultTolerationSeconds,
				LogLevel:                            DefaultLogLevel,
				PushWait:                            Duration{DefaultPushWait},
				LeaderElection: LeaderElection{
					LeaseDuration: Duration{DefaultLeaseDuration},
					RenewDeadline: Duration{DefaultRenewDeadline},
					RetryPeriod:   Duration{DefaultRetryPeriod},
				},
				Datastore: Datastore{
					CompactInterval:  Duration{DefaultCompactInterval},
					CompactRetention: DefaultCompactRetention,
					CompactMinAge:    Duration{DefaultCompactMinAge},
				},
			},
		},
		{
			name: "set fields kept",
			in: Config{
				DataDir: "/d", APIListen: "0.0.0.0:1", DashboardListen: ":2", ClusterCIDR: "10.0.0.0/8",
				ServiceCIDR: "192.168.0.0/16", ClusterDNS: "192.168.0.10", NodePortRange: "1-2",
				NodeName: "n1", NodeIP: "10.1.2.3", KubeletPort: 1, LogLevel: "debug", Disable: []string{"sync"},
				ContainerLogMaxSize: "1Mi", ContainerLogMaxFiles: 2,
				NodeMonitorGracePeriod: Duration{time.Second}, DefaultNotReadyTolerationSeconds: 5, DefaultUnreachableTolerationSeconds: 6,
				Datastore: Datastore{CompactInterval: Duration{-1}, CompactRetention: 5, CompactMinAge: Duration{time.Second}},
				PushWait:  Duration{time.Second},
				Token:     "secret", LeaderElection: LeaderElection{Duration{3 * time.Second}, Duration{2 * time.Second}, Duration{time.Second}},
				IngressListen: ptrTo(""), IngressTLSListen: ptrTo(":8443"),
			},
			want: Config{
				DataDir: "/d", APIListen: "0.0.0.0:1", DashboardListen: ":2", ClusterCIDR: "10.0.0.0/8",
				ServiceCIDR: "192.168.0.0/16", ClusterDNS: "192.168.0.10", NodePortRange: "1-2",
				NodeName: "n1", NodeIP: "10.1.2.3", KubeletPort: 1, LogLevel: "debug", Disable: []string{"sync"},
				ContainerLogMaxSize: "1Mi", ContainerLogMaxFiles: 2,
				NodeMonitorGracePeriod: Duration{time.Second}, DefaultNotReadyTolerationSeconds: 5, DefaultUnreachableTolerationSeconds: 6,
				Datastore: Datastore{CompactInterval: Duration{-1}, CompactRetention: 5, CompactMinAge: Duration{time.Second}},
				PushWait:  Duration{time.Second},
				Token:     "secret", LeaderElection: LeaderElection{Duration{3 * time.Second}, Duration{2 * time.Second}, Duration{time.Second}},
				IngressListen: ptrTo(""), IngressTLSListen: ptrTo(":8443"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in
			c.SetDefaults()
			if !reflect.DeepEqual(c, tc.want) {
				t.Errorf("SetDefaults =\n%+v\nwant\n%+v", c, tc.want)
			}
			again := c
			again.SetDefaults()
			if !reflect.DeepEqual(again, c) {
				t.Errorf("SetDefaults is not idempotent")
			}
		})
	}
}

func TestConfig_SetDefaults_sources(t *testing.T) {
	prune, noPrune := true, false
	c := Config{Sources: []Source{
		{Kind: SourceKindDir, Path: "/srv/My_Manifests"},
		{Kind: SourceKindGit, URL: "https://example.com/org/app.git"},
		{Name: "x", Kind: SourceKindGit, URL: "u:v", Interval: Duration{time.Hour}, Namespace: "ns", Prune: &noPrune, Drift: DriftIgnore, Rollback: RollbackAuto},
		{Kind: SourceKindGit, URL: "https://example.com"}, // no name to derive
	}}
	c.SetDefaults()
	want := []Source{
		{Name: "my-manifests", Kind: SourceKindDir, Path: "/srv/My_Manifests", Namespace: "default", Prune: &prune, Drift: DriftRevert, Rollback: RollbackNone},
		{Name: "app", Kind: SourceKindGit, URL: "https://example.com/org/app.git", Interval: Duration{DefaultGitInterval}, Namespace: "default", Prune: &prune, Drift: DriftRevert, Rollback: RollbackNone},
		{Name: "x", Kind: SourceKindGit, URL: "u:v", Interval: Duration{time.Hour}, Namespace: "ns", Prune: &noPrune, Drift: DriftIgnore, Rollback: RollbackAuto},
		{Kind: SourceKindGit, URL: "https://example.com", Interval: Duration{DefaultGitInterval}, Namespace: "default", Prune: &prune, Drift: DriftRevert, Rollback: RollbackNone},
	}
	if !reflect.DeepEqual(c.Sources, want) {
		t.Errorf("sources =\n%+v\nwant\n%+v", c.Sources, want)
	}
}

func ptrTo(s string) *string { return &s }
