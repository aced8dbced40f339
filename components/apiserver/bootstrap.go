package apiserver

import (
	"context"
	"fmt"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// systemNamespaces exist from the first start, as in Kubernetes.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// bootstrap creates the built-in namespaces and the kubernetes Service
// (first address of the service CIDR) when missing.
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
	return nil
}

// ensure creates obj unless an object of that name exists.
func (s *Server) ensure(ctx context.Context, res *resource, obj runtime.Object) error {
	m := accessor(obj)
	if _, err := s.store.Get(ctx, res.key(m.GetNamespace(), m.GetName())); err == nil {
		return nil
	}
	_, _, err := s.create(ctx, res, obj, false)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("apiserver: create %s %s: %w", res.Kind, m.GetName(), err)
	}
	return nil
}
