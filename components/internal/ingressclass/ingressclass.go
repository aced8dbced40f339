// Package ingressclass names what the apiserver and the proxy's ingress
// controller agree on for kiln's built-in ingress (k3s ships Traefik): the
// default IngressClass the API server creates at bootstrap and the
// controller name the proxy serves. It holds names only; it talks to
// nothing.
//
//	served := class.Spec.Controller == ingressclass.Controller
package ingressclass

const (
	// Name is the default IngressClass the API server creates at
	// bootstrap, marked as the cluster's default class.
	Name = "kiln"
	// Controller is the spec.controller of the classes the proxy's
	// ingress controller serves.
	Controller = "kiln.dev/ingress"
	// TLSSecretType is the only Secret type the ingress reads
	// certificates from; the node authorizer lets a node see no other
	// Secret an Ingress names.
	TLSSecretType = "kubernetes.io/tls"
)
