package apiserver

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/components/store"
)

// Allocations live in etcd beside the objects, one key per IP or port, and
// are created and deleted in the same transaction as their Service: an IP
// is never handed out twice, and a deleted Service frees it atomically.
const (
	ipAllocPrefix   = "/kiln/allocations/serviceips/"
	portAllocPrefix = "/kiln/allocations/nodeports/"
)

func ipKey(ip string) string              { return ipAllocPrefix + ip }
func portKey(p int32) string              { return portAllocPrefix + strconv.Itoa(int(p)) }
func svcOwner(svc *corev1.Service) []byte { return []byte(svc.Namespace + "/" + svc.Name) }

func needsNodePorts(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeNodePort || svc.Spec.Type == corev1.ServiceTypeLoadBalancer
}

func needsClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// keepAllocations copies the allocated IP and node ports of old into an
// update that left them out, as kube's patchAllocatedValues does, so a
// replace without them keeps them.
func keepAllocations(svc, old *corev1.Service) {
	if needsClusterIP(svc) && svc.Spec.ClusterIP == "" && needsClusterIP(old) {
		svc.Spec.ClusterIP = old.Spec.ClusterIP
		svc.Spec.ClusterIPs = old.Spec.ClusterIPs
	}
	if needsNodePorts(svc) && needsNodePorts(old) {
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			for _, op := range old.Spec.Ports {
				if op.Port == p.Port && op.Protocol == p.Protocol {
					p.NodePort = op.NodePort
				}
			}
		}
	}
}

// allocateService fills in the ClusterIP and node ports of svc and returns
// the allocation keys to create and release with it. old is nil on create.
func (s *Server) allocateService(ctx context.Context, svc, old *corev1.Service) ([]store.Extra, error) {
	var extras []store.Extra
	held := map[string]bool{}
	if old != nil {
		for _, k := range serviceKeys(old) {
			held[k] = true
		}
	}
	var errs field.ErrorList
	if !needsClusterIP(svc) {
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			svc.Spec.ClusterIP, svc.Spec.ClusterIPs = "", nil
		} else {
			svc.Spec.ClusterIPs = []string{corev1.ClusterIPNone}
		}
	} else if svc.Spec.ClusterIP == "" {
		ip, err := s.freeIP(ctx)
		if err != nil {
			return nil, err
		}
		svc.Spec.ClusterIP = ip
		svc.Spec.ClusterIPs = []string{ip}
	} else if !held[ipKey(svc.Spec.ClusterIP)] {
		addr, err := netip.ParseAddr(svc.Spec.ClusterIP)
		if err != nil || !s.serviceCIDR.Contains(addr) || addr == s.serviceCIDR.Addr() || addr == lastAddr(s.serviceCIDR) {
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP,
				fmt.Sprintf("failed to allocate IP %s: provided IP is not in the valid range. The range of valid IPs is %s", svc.Spec.ClusterIP, s.serviceCIDR)))
		} else if taken, err := s.isAllocated(ctx, ipKey(svc.Spec.ClusterIP)); err != nil {
			return nil, err
		} else if taken {
			// Kube's wording; the write's precondition would refuse it
			// anyway, but only as a retryable conflict.
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIP,
				fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", svc.Spec.ClusterIP)))
		}
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	if needsNodePorts(svc) {
		taken := map[int32]bool{}
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort == 0 {
				continue
			}
			if int(p.NodePort) < s.nodePorts.first || int(p.NodePort) > s.nodePorts.last {
				errs = append(errs, field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
					fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", s.nodePorts.first, s.nodePorts.last)))
			} else if !held[portKey(p.NodePort)] {
				taken, err := s.isAllocated(ctx, portKey(p.NodePort))
				if err != nil {
					return nil, err
				}
				if taken {
					errs = append(errs, field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
						"provided port is already allocated"))
				}
			}
			taken[p.NodePort] = true
		}
		for i := range svc.Spec.Ports {
			p := &svc.Spec.Ports[i]
			if p.NodePort != 0 {
				continue
			}
			port, err := s.freePort(ctx, taken)
			if err != nil {
				return nil, err
			}
			p.NodePort = port
			taken[port] = true
		}
	} else {
		for i := range svc.Spec.Ports {
			svc.Spec.Ports[i].NodePort = 0
		}
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(corev1.SchemeGroupVersion.WithKind("Service").GroupKind(), svc.Name, errs)
	}
	want := map[string]bool{}
	for _, k := range serviceKeys(svc) {
		if want[k] {
			continue
		}
		want[k] = true
		if !held[k] {
			extras = append(extras, store.Extra{Key: k, Value: svcOwner(svc)})
		}
	}
	for k := range held {
		if !want[k] {
			extras = append(extras, store.Extra{Key: k})
		}
	}
	return extras, nil
}

// serviceKeys lists the allocation keys a Service holds.
func serviceKeys(svc *corev1.Service) []string {
	var keys []string
	if needsClusterIP(svc) && svc.Spec.ClusterIP != "" {
		keys = append(keys, ipKey(svc.Spec.ClusterIP))
	}
	if needsNodePorts(svc) {
		for _, p := range svc.Spec.Ports {
			if p.NodePort != 0 {
				keys = append(keys, portKey(p.NodePort))
			}
		}
	}
	return keys
}

// releaseAll returns the deletes of every allocation obj holds.
func (s *Server) releaseAll(obj runtime.Object) []store.Extra {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil
	}
	var out []store.Extra
	seen := map[string]bool{}
	for _, k := range serviceKeys(svc) {
		if !seen[k] {
			seen[k] = true
			out = append(out, store.Extra{Key: k})
		}
	}
	return out
}

// isAllocated reports whether an allocation key is held.
func (s *Server) isAllocated(ctx context.Context, key string) (bool, error) {
	_, err := s.store.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// lastAddr is the broadcast address of an IPv4 prefix, never handed out.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= uint32(uint64(1)<<(32-p.Bits()) - 1)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// allocated lists the keys under prefix (allocations are small).
func (s *Server) allocated(ctx context.Context, prefix string) (map[string]bool, error) {
	resp, err := s.store.Client().Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[strings.TrimPrefix(string(kv.Key), prefix)] = true
	}
	return m, nil
}

// randomProbes is how many random picks freeIP and freePort try before
// scanning. Uniform picks spread concurrent creates over every free
// address, where a scan from a random start would send all whose start
// falls in one run of taken addresses to the same free one after it.
const randomProbes = 32

// pickFree returns a free index of 0..span-1: first by random probes, then
// by a scan from a random start (a range nearly full).
func pickFree(span int, free func(i int) bool) (int, bool) {
	for range min(randomProbes, span) {
		if i := rand.IntN(span); free(i) {
			return i, true
		}
	}
	start := rand.IntN(span)
	for j := range span {
		if i := (start + j) % span; free(i) {
			return i, true
		}
	}
	return 0, false
}

// freeIP picks an unallocated address of the service CIDR at random, so
// that concurrent creates rarely collide (and retry when they do). The
// network address, the first address (the kubernetes Service), the
// broadcast address and the cluster DNS address are never handed out.
func (s *Server) freeIP(ctx context.Context) (string, error) {
	used, err := s.allocated(ctx, ipAllocPrefix)
	if err != nil {
		return "", err
	}
	size := uint64(1) << (32 - s.serviceCIDR.Bits())
	base := new(big.Int).SetBytes(s.serviceCIDR.Addr().AsSlice()).Uint64()
	addr := func(i int) netip.Addr {
		n := base + 2 + uint64(i)
		return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	}
	i, ok := pickFree(int(size-3), func(i int) bool {
		a := addr(i)
		return a != s.clusterDNS && !used[a.String()]
	})
	if !ok {
		return "", apierrors.NewInternalError(fmt.Errorf("range %s is full: no ClusterIP left", s.serviceCIDR))
	}
	return addr(i).String(), nil
}

// freePort picks an unallocated NodePort not in taken (the ports this
// Service already has) at random, as freeIP does.
func (s *Server) freePort(ctx context.Context, taken map[int32]bool) (int32, error) {
	used, err := s.allocated(ctx, portAllocPrefix)
	if err != nil {
		return 0, err
	}
	span := s.nodePorts.last - s.nodePorts.first + 1
	i, ok := pickFree(span, func(i int) bool {
		p := int32(s.nodePorts.first + i)
		return !used[strconv.Itoa(int(p))] && !taken[p]
	})
	if !ok {
		return 0, apierrors.NewInternalError(fmt.Errorf("range %d-%d is full: no NodePort left", s.nodePorts.first, s.nodePorts.last))
	}
	return int32(s.nodePorts.first + i), nil
}
