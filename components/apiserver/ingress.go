package apiserver

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"kiln.dev/kiln/components/internal/ingressclass"
)

var (
	gvrIngresses      = gvrKey{"networking.k8s.io", "v1", "ingresses"}
	gvrIngressClasses = gvrKey{"networking.k8s.io", "v1", "ingressclasses"}
)

// legacyIngressClassAnnotation named an Ingress's class before
// ingressClassName; kube's admission leaves such Ingresses alone.
const legacyIngressClassAnnotation = "kubernetes.io/ingress.class"

// defaultIngressClass is the class bootstrap creates, as k3s ships
// Traefik's: served by the ingress controller in every node's proxy.
func defaultIngressClass() *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: ingressclass.Name,
			Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}},
		Spec: networkingv1.IngressClassSpec{Controller: ingressclass.Controller},
	}
}

// admitIngressClass is kube's DefaultIngressClass admission: an Ingress
// created without ingressClassName (or the legacy annotation) gets the
// default class, the newest if several are marked. Other objects pass.
func (s *Server) admitIngressClass(ctx context.Context, obj runtime.Object) error {
	ing, ok := obj.(*networkingv1.Ingress)
	if !ok || ing.Spec.IngressClassName != nil {
		return nil
	}
	if _, ok := ing.Annotations[legacyIngressClassAnnotation]; ok {
		return nil
	}
	classes, err := s.listObjects(ctx, gvrIngressClasses, "")
	if err != nil {
		return fmt.Errorf("apiserver: list ingress classes: %w", err)
	}
	var best *networkingv1.IngressClass
	for _, o := range classes {
		ic, ok := o.(*networkingv1.IngressClass)
		if !ok || ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "true" {
			continue
		}
		if best == nil || ic.CreationTimestamp.After(best.CreationTimestamp.Time) ||
			ic.CreationTimestamp.Equal(&best.CreationTimestamp) && ic.Name < best.Name {
			best = ic
		}
	}
	if best != nil {
		ing.Spec.IngressClassName = &best.Name
	}
	return nil
}

// nodeIngressAllows is what the ingress controller in a node's proxy
// needs: to read Ingresses and IngressClasses and write Ingress status
// (its address in the load-balancer status). Kube's node authorizer has
// no such rule; Traefik in k3s has the same through its own role.
func nodeIngressAllows(ri requestInfo) bool {
	read := ri.verb == "get" || ri.verb == "list" || ri.verb == "watch"
	switch ri.resource {
	case "ingresses":
		return ri.subresource == "" && read ||
			ri.subresource == "status" && ri.name != "" && (ri.verb == "get" || ri.verb == "update" || ri.verb == "patch")
	case "ingressclasses":
		return ri.subresource == "" && read
	}
	return false
}

// nodeIngressSecret reports whether a node may list or watch Secret
// namespace/name for the ingress controller: an Ingress in that namespace
// names it in spec.tls, and the request selects type kubernetes.io/tls
// as well as the name, so that no other Secret an Ingress happens to name
// is ever shown.
func (s *Server) nodeIngressSecret(ctx context.Context, ri requestInfo, name string) (bool, error) {
	if ri.verb != "list" && ri.verb != "watch" || !selects(ri.fieldSelector, "type", ingressclass.TLSSecretType) {
		return false, nil
	}
	ings, err := s.listObjects(ctx, gvrIngresses, ri.namespace)
	if err != nil {
		return false, apierrors.NewInternalError(err)
	}
	for _, o := range ings {
		ing, ok := o.(*networkingv1.Ingress)
		if !ok {
			continue
		}
		for _, t := range ing.Spec.TLS {
			if t.SecretName == name {
				return true, nil
			}
		}
	}
	return false, nil
}
