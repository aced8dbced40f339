package kubelet

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The pod's network files, bind-mounted at /etc/hosts and
// /etc/resolv.conf.
const (
	hostsFile  = "etc-hosts"
	resolvFile = "resolv.conf"
)

// Limits of resolv.conf, as the kubelet enforces them (glibc reads no
// more).
const (
	maxNameservers = 3
	maxSearches    = 32
)

// writeNetworkFiles writes the pod's etc-hosts and resolv.conf.
func (k *Kubelet) writeNetworkFiles(pod *corev1.Pod, podIP string) error {
	dir := k.podDir(pod.UID)
	hosts, err := k.hostsFileFor(pod, podIP)
	if err != nil {
		return err
	}
	if err := writeIfChanged(filepath.Join(dir, hostsFile), hosts); err != nil {
		return err
	}
	resolv, err := k.resolvConfFor(pod)
	if err != nil {
		return err
	}
	return writeIfChanged(filepath.Join(dir, resolvFile), resolv)
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// hostsFileFor is the kubelet's managed hosts file: localhost entries and
// the pod's own name, or the node's /etc/hosts for host-network pods,
// then the pod's hostAliases.
func (k *Kubelet) hostsFileFor(pod *corev1.Pod, podIP string) ([]byte, error) {
	var b bytes.Buffer
	if pod.Spec.HostNetwork {
		host, err := os.ReadFile(k.cfg.HostsFile)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("read %s: %w", k.cfg.HostsFile, err)
		}
		b.Write(host)
		if len(host) > 0 && host[len(host)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n")
		b.WriteString("127.0.0.1\tlocalhost\n")
		b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
		b.WriteString("fe00::0\tip6-localnet\n")
		b.WriteString("fe00::0\tip6-mcastprefix\n")
		b.WriteString("fe00::1\tip6-allnodes\n")
		b.WriteString("fe00::2\tip6-allrouters\n")
		hostname := podHostname(pod)
		if podIP != "" {
			if sub := pod.Spec.Subdomain; sub != "" {
				fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", podIP, hostname, sub, pod.Namespace, k.cfg.ClusterDomain, hostname)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", podIP, hostname)
			}
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes(), nil
}

// resolvConfFor is the pod's resolv.conf by its dnsPolicy:
//   - ClusterFirst (the default): the cluster DNS, searching the pod's
//     namespace, svc and the cluster domain, ndots:5; a host-network pod
//     gets the node's instead, as in Kubernetes;
//   - ClusterFirstWithHostNet: the cluster DNS, host network or not;
//   - Default: the node's resolv.conf;
//   - None: only spec.dnsConfig.
//
// spec.dnsConfig is then merged in, as Kubernetes does.
func (k *Kubelet) resolvConfFor(pod *corev1.Pod) ([]byte, error) {
	var servers, searches, options []string
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	if policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork {
		policy = corev1.DNSDefault
	}
	switch policy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet:
		d := k.cfg.ClusterDomain
		servers = []string{k.cfg.ClusterDNS}
		searches = []string{pod.Namespace + ".svc." + d, "svc." + d, d}
		_, hostSearches, _, err := readResolvConf(k.cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		searches = append(searches, hostSearches...)
		options = []string{"ndots:5"}
	case corev1.DNSDefault:
		var err error
		if servers, searches, options, err = readResolvConf(k.cfg.ResolvConf); err != nil {
			return nil, err
		}
	}
	if dc := pod.Spec.DNSConfig; dc != nil {
		servers = appendNew(servers, dc.Nameservers...)
		searches = appendNew(searches, dc.Searches...)
		for _, o := range dc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			options = mergeOption(options, o.Name, opt)
		}
	}
	if len(servers) > maxNameservers {
		servers = servers[:maxNameservers]
	}
	if len(searches) > maxSearches {
		searches = searches[:maxSearches]
	}
	var b bytes.Buffer
	if len(searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(searches, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.Bytes(), nil
}

// readResolvConf reads a resolv.conf's nameservers, search domains and
// options. A missing file is an empty one.
func readResolvConf(path string) (servers, searches, options []string, err error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			servers = append(servers, f[1])
		case "search":
			// The last search line wins, as in glibc.
			searches = slices.Clone(f[1:])
		case "options":
			options = append(options, f[1:]...)
		}
	}
	return servers, searches, options, nil
}

func appendNew(list []string, more ...string) []string {
	for _, s := range more {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

// mergeOption replaces an option of the same name or appends it.
func mergeOption(options []string, name, opt string) []string {
	for i, o := range options {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			options[i] = opt
			return options
		}
	}
	return append(options, opt)
}
