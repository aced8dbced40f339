package config

import (
	"net"
	"os"
	"strings"
)

// SetDefaults fills every zero field with its default, including each
// source's name, namespace, prune, drift and (for git) interval. It never
// changes a field that is set, so it is safe to call more than once. NodeName
// defaults to the lower-cased os.Hostname(); if that fails it stays empty and
// Validate reports it.
func (c *Config) SetDefaults() {
	setString(&c.DataDir, DefaultDataDir)
	setString(&c.APIListen, DefaultAPIListen)
	setString(&c.DashboardListen, DefaultDashboardListen)
	if c.IngressListen == nil {
		v := DefaultIngressListen
		c.IngressListen = &v
	}
	if c.IngressTLSListen == nil {
		v := DefaultIngressTLSListen
		c.IngressTLSListen = &v
	}
	setString(&c.ClusterCIDR, DefaultClusterCIDR)
	setString(&c.ServiceCIDR, DefaultServiceCIDR)
	setString(&c.ClusterDNS, DefaultClusterDNS)
	setString(&c.NodePortRange, DefaultNodePortRange)
	setString(&c.LogLevel, DefaultLogLevel)
	if c.PushWait.Duration == 0 {
		c.PushWait.Duration = DefaultPushWait
	}
	setString(&c.NodeIP, defaultNodeIP())
	if c.KubeletPort == 0 {
		c.KubeletPort = DefaultKubeletPort
	}
	setString(&c.ContainerLogMaxSize, DefaultContainerLogMaxSize)
	if c.ContainerLogMaxFiles == 0 {
		c.ContainerLogMaxFiles = DefaultContainerLogMaxFiles
	}
	if c.NodeMonitorGracePeriod.Duration == 0 {
		c.NodeMonitorGracePeriod.Duration = DefaultNodeMonitorGracePeriod
	}
	if c.DefaultNotReadyTolerationSeconds == 0 {
		c.DefaultNotReadyTolerationSeconds = DefaultTolerationSeconds
	}
	if c.DefaultUnreachableTolerationSeconds == 0 {
		c.DefaultUnreachableTolerationSeconds = DefaultTolerationSeconds
	}
	if c.NodeName == "" {
		if h, err := os.Hostname(); err == nil {
			c.NodeName = strings.ToLower(h)
		}
	}

	le := &c.LeaderElection
	if le.LeaseDuration.Duration == 0 {
		le.LeaseDuration.Duration = DefaultLeaseDuration
	}
	if le.RenewDeadline.Duration == 0 {
		le.RenewDeadline.Duration = DefaultRenewDeadline
	}
	if le.RetryPeriod.Duration == 0 {
		le.RetryPeriod.Duration = DefaultRetryPeriod
	}

	d := &c.Datastore
	if d.CompactInterval.Duration == 0 {
		d.CompactInterval.Duration = DefaultCompactInterval
	}
	if d.CompactRetention == 0 {
		d.CompactRetention = DefaultCompactRetention
	}
	if d.CompactMinAge.Duration == 0 {
		d.CompactMinAge.Duration = DefaultCompactMinAge
	}

	for i := range c.Sources {
		c.Sources[i].setDefaults()
	}
}

func (s *Source) setDefaults() {
	if s.Name == "" {
		// An underivable name stays empty; Validate reports it.
		switch s.Kind {
		case SourceKindDir:
			s.Name, _ = dirSourceName(s.Path)
		case SourceKindGit:
			s.Name = gitSourceName(s.URL)
		}
	}
	if s.Kind == SourceKindGit && s.Interval.Duration == 0 {
		s.Interval.Duration = DefaultGitInterval
	}
	setString(&s.Namespace, DefaultSourceNamespace)
	if s.Prune == nil {
		prune := true
		s.Prune = &prune
	}
	setString(&s.Drift, DefaultDrift)
	setString(&s.Rollback, RollbackNone)
}

func setString(p *string, def string) {
	if *p == "" {
		*p = def
	}
}

// defaultNodeIP is the local address the kernel picks for the default
// route. Connecting a UDP socket sends nothing; it only asks for a route.
// Without one (an offline machine) the node is 127.0.0.1.
func defaultNodeIP() string {
	c, err := net.Dial("udp4", "192.0.2.255:9")
	if err != nil {
		return "127.0.0.1"
	}
	defer c.Close()
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP.String()
	}
	return "127.0.0.1"
}
