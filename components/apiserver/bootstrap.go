package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kiln.dev/kiln/components/store"
)

// systemNamespaces exist from the first start, as in Kubernetes.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// bootstrap creates the built-in namespaces, the kubernetes Service
// (first address of the service CIDR), the default ClusterRoles, the
// local-path StorageClass, the kiln IngressClass and, with ClusterDNS
// set, the kube-dns Service, when missing.
func (s *Server) bootstrap(ctx context.Context) error {
	nsRes := s.byGVR[gvrKey{"", "v1", "namespaces"}]
	for _, name := range systemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := s.ensure(ctx, nsRes, ns); err != nil {
			return err
		}
	}
	_, portStr, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return fmt.Errorf("apiserver: listen address: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	first := s.serviceCIDR.Addr().Next()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default",
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: first.String(),
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	if err := s.ensure(ctx, s.byGVR[gvrKey{"", "v1", "services"}], svc); err != nil {
		return err
	}
	if err := s.ensureDefaultRoles(ctx); err != nil {
		return err
	}
	if err := s.ensure(ctx, s.byGVR[gvrStorageClasses], defaultStorageClass()); err != nil {
		return err
	}
	if err := s.ensure(ctx, s.byGVR[gvrIngressClasses], defaultIngressClass()); err != nil {
		return err
	}
	if s.clusterDNS.IsValid() {
		return s.ensureDNSService(ctx)
	}
	return nil
}

// ensureDNSService creates kube-system/kube-dns at the cluster DNS address,
// as k3s's CoreDNS manifest does: kubectl shows where DNS is, and the
// address is allocated, so that no Service can be given it. It has no
// selector (the proxy serves DNS on the node itself and writes no rules
// for it). An address already held by another Service, from a cluster that
// ran before ClusterDNS was set, is a warning, not a failure to start: DNS
// still answers there, and only that Service is unreachable.
func (s *Server) ensureDNSService(ctx context.Context) error {
	services := s.byGVR[gvrKey{"", "v1", "services"}]
	ip := s.clusterDNS.String()
	kv, err := s.store.Get(ctx, services.key("kube-system", "kube-dns"))
	if err == nil {
		if obj, err := services.decodeStored(kv); err == nil && obj.(*corev1.Service).Spec.ClusterIP != ip {
			s.log.Warn("kube-dns service is not at the cluster dns address", logKeyClusterIP, obj.(*corev1.Service).Spec.ClusterIP, logKeyClusterDNS, ip)
		}
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("apiserver: get kube-dns service: %w", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: "kube-system",
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: ip,
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
			},
		},
	}
	_, _, err = s.create(ctx, services, svc, false)
	if err != nil {
		// As in ensure: another server may have just created it.
		if _, gerr := s.store.Get(ctx, services.key("kube-system", "kube-dns")); gerr == nil {
			return nil
		}
	}
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		return nil
	case apierrors.IsInvalid(err):
		owner := ""
		if kv, err := s.store.Get(ctx, ipKey(ip)); err == nil {
			owner = string(kv.Value)
		}
		s.log.Warn("cluster dns address held by another service", logKeyClusterDNS, ip, logKeyService, owner)
		return nil
	}
	return fmt.Errorf("apiserver: create kube-dns service: %w", err)
}

// ensure creates obj unless an object of that name exists.
func (s *Server) ensure(ctx context.Context, res *resource, obj runtime.Object) error {
	m := accessor(obj)
	if _, err := s.store.Get(ctx, res.key(m.GetNamespace(), m.GetName())); err == nil {
		return nil
	}
	_, _, err := s.create(ctx, res, obj, false)
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	// Another server sharing the store may have created it in between:
	// the kubernetes Service's address then reads as already allocated
	// before its name reads as taken.
	if _, gerr := s.store.Get(ctx, res.key(m.GetNamespace(), m.GetName())); gerr == nil {
		return nil
	}
	return fmt.Errorf("apiserver: create %s %s: %w", res.Kind, m.GetName(), err)
}
