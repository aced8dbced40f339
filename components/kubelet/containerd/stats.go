package containerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// ownCgroup reports whether path is a cgroupfs path kiln can read (a
// systemd slice, "slice:prefix:name", is not).
func ownCgroup(path string) bool { return path != "" && !strings.Contains(path, ":") }

// unifiedCgroups reports whether root holds cgroup v2 (one hierarchy)
// rather than v1's per-controller ones.
func unifiedCgroups(root string) bool {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return err == nil
}

// ContainerStats implements runtime.Runtime from the container's cgroup,
// in the cgroupfs layout of v1 (cpuacct, memory) or v2 (unified).
func (r *Runtime) ContainerStats(ctx context.Context, id string) (*runtime.ContainerStats, error) {
	c, err := r.getClient()
	if err != nil {
		return nil, err
	}
	rec, err := getRecord(ctx, c, id, kindContainer)
	if err != nil {
		return nil, err
	}
	path := cgroupsPath(rec)
	if !ownCgroup(path) {
		return nil, fmt.Errorf("container %s has no cgroupfs cgroup", id)
	}
	return readCgroupStats(cgroupRoot, path)
}

// readCgroupStats reads the usage of cgroup path under root.
func readCgroupStats(root, path string) (*runtime.ContainerStats, error) {
	if unifiedCgroups(root) {
		dir := filepath.Join(root, path)
		cpu, err := statField(filepath.Join(dir, "cpu.stat"), "usage_usec")
		if err != nil {
			return nil, err
		}
		usage, err := readUint(filepath.Join(dir, "memory.current"))
		if err != nil {
			return nil, err
		}
		inactive, _ := statField(filepath.Join(dir, "memory.stat"), "inactive_file")
		return &runtime.ContainerStats{CPU: time.Duration(cpu) * time.Microsecond, MemoryWorkingSet: workingSet(usage, inactive)}, nil
	}
	cpu, err := readUint(filepath.Join(root, "cpuacct", path, "cpuacct.usage"))
	if err != nil {
		return nil, err
	}
	mem := filepath.Join(root, "memory", path)
	usage, err := readUint(filepath.Join(mem, "memory.usage_in_bytes"))
	if err != nil {
		return nil, err
	}
	inactive, _ := statField(filepath.Join(mem, "memory.stat"), "total_inactive_file")
	return &runtime.ContainerStats{CPU: time.Duration(cpu), MemoryWorkingSet: workingSet(usage, inactive)}, nil
}

// workingSet is usage less inactive file pages, as cAdvisor counts it.
func workingSet(usage, inactive uint64) uint64 {
	if inactive > usage {
		return 0
	}
	return usage - inactive
}

func readUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
}

// statField reads "key value" from a cgroup stat file.
func statField(file, key string) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, errors.New(file + ": no " + key)
}
