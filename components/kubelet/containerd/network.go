package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
)

// The pod network is one CNI network (netName) for eth0: the
// bridge plugin with host-local IPAM, then portmap for pods with host
// ports.
//
// Two things CNI plugins could do are done by kiln instead, because pod
// start-up time is dominated by plugin execs and iptables calls (which also
// serialize concurrent pod starts on the xtables lock): lo is brought up
// when the namespace is made (what the loopback plugin would do, without an
// exec per ADD and DEL), and pods are masqueraded by one chain per node
// (masquerade.go) instead of the bridge plugin's ipMasq chain per pod. A
// sandbox's network went from 60-100 ms to 20-30 ms.
const (
	cniNetwork = "kiln"
	cniVersion = "1.0.0"
	podIfName  = "eth0"
)

// netName names the network: "kiln", or "kiln-<namespace>" for a runtime
// in another namespace, so that runtimes sharing a data dir (several
// kubelets on one host against one containerd) keep apart their config
// files and host-local's allocations.
func (r *Runtime) netName() string {
	if r.cfg.Namespace == DefaultNamespace {
		return cniNetwork
	}
	return cniNetwork + "-" + r.cfg.Namespace
}

// confFile is the network's config file in CNIConfDir.
func (r *Runtime) confFile() string {
	return filepath.Join(r.cfg.CNIConfDir, "10-"+r.netName()+".conflist")
}

// cniPlugins are the plugins the network needs in CNIBinDir.
var cniPlugins = []string{"bridge", "host-local", "portmap"}

// podNetwork is the loaded network config for one pod CIDR. list has the
// bridge only; withPorts adds portmap (same network name, so IPAM state
// and libcni's cache are shared). A sandbox uses withPorts exactly when it
// has host ports, at ADD and at DEL.
type podNetwork struct {
	cidr      string
	list      *libcni.NetworkConfigList
	withPorts *libcni.NetworkConfigList
}

func (n *podNetwork) listFor(rec *sandboxRecord) *libcni.NetworkConfigList {
	for _, p := range rec.Ports {
		if p.HostPort != 0 {
			return n.withPorts
		}
	}
	return n.list
}

// conflist is the part of the bridge conflist kiln writes and reads back.
type conflist struct {
	CNIVersion string           `json:"cniVersion"`
	Name       string           `json:"name"`
	Plugins    []map[string]any `json:"plugins"`
}

// bridgeConflist is the network for cidr, with or without portmap.
func (r *Runtime) bridgeConflist(cidr string, ports bool) ([]byte, error) {
	c := conflist{
		CNIVersion: cniVersion,
		Name:       r.netName(),
		Plugins: []map[string]any{
			{
				"type":        "bridge",
				"bridge":      r.cfg.BridgeName,
				"isGateway":   true,
				"ipMasq":      false, // one rule per node instead; see above
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": cidr}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": r.p.cniData,
				},
			},
		},
	}
	if ports {
		c.Plugins = append(c.Plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	return json.MarshalIndent(c, "", "  ")
}

// SetPodCIDR implements runtime.Runtime: it writes the bridge network's
// config for cidr, loads it, sets up the pods' masquerading and turns on
// IP forwarding.
func (r *Runtime) SetPodCIDR(ctx context.Context, cidr string) error {
	ip, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("pod CIDR: %w", err)
	}
	if ip.To4() == nil {
		return fmt.Errorf("pod CIDR %q: only IPv4 is supported", cidr)
	}
	cidr = ipnet.String()
	r.mu.Lock()
	same := r.network != nil && r.network.cidr == cidr
	r.mu.Unlock()
	if !same {
		b, err := r.bridgeConflist(cidr, true)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(r.cfg.CNIConfDir, 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(r.confFile(), b); err != nil {
			return err
		}
		if err := r.loadNetwork(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	masq := r.masqCIDR == cidr
	r.mu.Unlock()
	if !masq {
		if err := r.ensureMasquerade(cidr); err != nil {
			return err
		}
		r.mu.Lock()
		r.masqCIDR = cidr
		r.mu.Unlock()
	}
	if err := enableForwarding(); err != nil {
		return err
	}
	if same {
		return nil
	}
	r.log.Info("pod network configured", "cidr", cidr, "bridge", r.cfg.BridgeName)
	return nil
}

// loadNetwork reads the network config written by SetPodCIDR, so that a
// restarted kiln can tear down the networks of pods it adopted before the
// kubelet sets the CIDR again.
func (r *Runtime) loadNetwork() error {
	b, err := os.ReadFile(r.confFile())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var c struct {
		Plugins []struct {
			IPAM struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &c); err != nil || len(c.Plugins) == 0 || len(c.Plugins[0].IPAM.Ranges) == 0 || len(c.Plugins[0].IPAM.Ranges[0]) == 0 {
		return fmt.Errorf("%s: no subnet in the first plugin's ipam ranges", r.confFile())
	}
	// The file is what people read; both lists are rebuilt from its CIDR,
	// so a config from an older kiln is replaced as a whole.
	cidr := c.Plugins[0].IPAM.Ranges[0][0].Subnet
	n := &podNetwork{cidr: cidr}
	for _, ports := range []bool{false, true} {
		b, err := r.bridgeConflist(cidr, ports)
		if err != nil {
			return err
		}
		list, err := libcni.ConfListFromBytes(b)
		if err != nil {
			return fmt.Errorf("%s: %w", r.confFile(), err)
		}
		if ports {
			n.withPorts = list
		} else {
			n.list = list
		}
	}
	r.mu.Lock()
	r.network = n
	r.mu.Unlock()
	return nil
}

// networkReady says why pods cannot get a network, or nil.
func (r *Runtime) networkReady() error {
	r.mu.Lock()
	n := r.network
	r.mu.Unlock()
	if n == nil {
		return ErrNoPodCIDR
	}
	for _, p := range cniPlugins {
		if _, err := os.Stat(filepath.Join(r.cfg.CNIBinDir, p)); err != nil {
			return fmt.Errorf("CNI plugin %s missing in %s", p, r.cfg.CNIBinDir)
		}
	}
	return nil
}

func (r *Runtime) getNetwork() *podNetwork {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.network
}

func enableForwarding() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip forwarding: %w", err)
	}
	return nil
}

// runtimeConf is what CNI ADD and DEL of one sandbox are called with; DEL
// must repeat ADD's arguments.
func runtimeConf(id, netns string, rec *sandboxRecord) *libcni.RuntimeConf {
	rc := &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       netns,
		IfName:      podIfName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", rec.Namespace},
			{"K8S_POD_NAME", rec.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", rec.PodUID},
		},
	}
	var pm []map[string]any
	for _, p := range rec.Ports {
		if p.HostPort == 0 {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		pm = append(pm, map[string]any{
			"hostPort":      p.HostPort,
			"containerPort": p.ContainerPort,
			"protocol":      proto,
			"hostIP":        p.HostIP,
		})
	}
	if len(pm) > 0 {
		rc.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rc
}

// setupNetwork runs CNI ADD for the sandbox (eth0 on the bridge, with its
// host ports) and returns the pod IP.
func (r *Runtime) setupNetwork(ctx context.Context, n *podNetwork, id, netns string, rec *sandboxRecord) (string, error) {
	res, err := r.cni.AddNetworkList(ctx, n.listFor(rec), runtimeConf(id, netns, rec))
	if err != nil {
		return "", fmt.Errorf("cni add: %w", err)
	}
	return podIP(res)
}

// teardownNetwork runs CNI DEL; it releases the IP and host ports even
// when the namespace is gone.
func (r *Runtime) teardownNetwork(ctx context.Context, n *podNetwork, id, netns string, rec *sandboxRecord) error {
	if !isNetns(netns) {
		netns = "" // plugins then skip the interface and only free state
	}
	if err := r.cni.DelNetworkList(ctx, n.listFor(rec), runtimeConf(id, netns, rec)); err != nil {
		return fmt.Errorf("cni del: %w", err)
	}
	return nil
}

func podIP(res cnitypes.Result) (string, error) {
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return "", fmt.Errorf("cni result: %w", err)
	}
	for _, ip := range cur.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.String(), nil
		}
	}
	return "", errors.New("cni result has no IPv4 address")
}

// createNetns creates a network namespace with lo up and bind-mounts it
// at path, so it outlives every process in it (and kiln) until
// removeNetns.
func createNetns(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// unshare changes this thread's namespace and it is never changed
		// back: returning while still locked makes the Go runtime end the
		// thread instead of handing it to another goroutine.
		goruntime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare netns: %w", err)
			}
			if err := loopbackUp(); err != nil {
				return err
			}
			src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount netns: %w", err)
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// isNetns reports whether path is a mounted network namespace (after a
// reboot the file is still there, but no longer a mount).
func isNetns(path string) bool {
	if path == "" {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// removeNetns unmounts and removes a namespace made by createNetns;
// idempotent.
func removeNetns(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns: %w", err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// nodeIP is Config.NodeIP, else the IPv4 address of the interface that
// holds the default route, else 127.0.0.1.
func (r *Runtime) nodeIP() string {
	if r.cfg.NodeIP != "" {
		return r.cfg.NodeIP
	}
	b, err := os.ReadFile("/proc/net/route")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 2 || f[1] != "00000000" {
				continue
			}
			iface, err := net.InterfaceByName(f[0])
			if err != nil {
				continue
			}
			addrs, _ := iface.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					return ipn.IP.String()
				}
			}
		}
	}
	return "127.0.0.1"
}

// writeFileAtomic writes b to path through a temporary file and a rename.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// dialInNetns connects to addr from inside the network namespace at path
// (a pod's loopback, as kubectl port-forward reaches it). The socket
// stays in that namespace after the dialing thread is gone.
func dialInNetns(ctx context.Context, path, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		// The thread's namespace is never changed back: returning while
		// locked makes the Go runtime end the thread.
		goruntime.LockOSThread()
		ns, err := os.Open(path)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{err: fmt.Errorf("enter netns: %w", err)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		res <- result{conn, err}
	}()
	r := <-res
	return r.conn, r.err
}
