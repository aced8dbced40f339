package kubelet

import (
	"bufio"
	"bytes"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Pressure thresholds, the kubelet's default hard eviction thresholds
// (memory.available<100Mi, nodefs.available<10%) and 90% of pid_max.
const (
	memoryPressureBytes = 100 << 20
	diskPressureRatio   = 0.10
	pidPressureRatio    = 0.90
)

// capacity is the Node's capacity: the host's cpus, memory and the
// filesystem of RootDir, DefaultMaxPods pods, each overridable by
// Config.Capacity.
func (k *Kubelet) capacity() corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU:  *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourcePods: *resource.NewQuantity(DefaultMaxPods, resource.DecimalSI),
	}
	if m := meminfo(); m["MemTotal"] > 0 {
		c[corev1.ResourceMemory] = *resource.NewQuantity(m["MemTotal"], resource.BinarySI)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(k.cfg.RootDir, &fs); err == nil {
		c[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	for name, q := range k.cfg.Capacity {
		c[name] = q.DeepCopy()
	}
	return c
}

// allocatable is what pods may use: all of the capacity, kiln reserves
// nothing for the system.
func (k *Kubelet) allocatable() corev1.ResourceList { return k.capacity() }

// meminfo reads /proc/meminfo in bytes.
func meminfo() map[string]int64 {
	out := map[string]int64{}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[name] = n
	}
	return out
}

// hostPressure reports memory, disk (the filesystem of dir) and PID
// pressure on the host.
func hostPressure(dir string) (mem, disk, pid bool) {
	if m := meminfo(); m["MemTotal"] > 0 {
		mem = m["MemAvailable"] < memoryPressureBytes
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err == nil && fs.Blocks > 0 {
		disk = float64(fs.Bavail)/float64(fs.Blocks) < diskPressureRatio
	}
	if pidMax := readInt("/proc/sys/kernel/pid_max"); pidMax > 0 {
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			// The fourth field is "running/total" scheduling entities.
			if f := strings.Fields(string(la)); len(f) > 3 {
				if _, total, ok := strings.Cut(f[3], "/"); ok {
					if n, err := strconv.ParseInt(total, 10, 64); err == nil {
						pid = float64(n) > pidPressureRatio*float64(pidMax)
					}
				}
			}
		}
	}
	return mem, disk, pid
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// nodeInfo describes the host, the runtime and the kubelet.
func (k *Kubelet) nodeInfo() corev1.NodeSystemInfo {
	info := corev1.NodeSystemInfo{
		MachineID:               readTrim("/etc/machine-id"),
		SystemUUID:              readTrim("/sys/class/dmi/id/product_uuid"),
		BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
		KernelVersion:           readTrim("/proc/sys/kernel/osrelease"),
		OSImage:                 osImage(),
		ContainerRuntimeVersion: k.runtimeName + "://" + k.runtimeVer,
		KubeletVersion:          k.cfg.KubeletVersion,
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
	return info
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// osImage is PRETTY_NAME of /etc/os-release.
func osImage() string {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "Unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return "Unknown"
}
