package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kiln.dev/kiln/components/apiserver"
	"kiln.dev/kiln/components/proxy/dns"
	"kiln.dev/kiln/components/store"
)

// The kubernetes Service's endpoints are the API servers pods can reach,
// as kube-apiserver's endpoint reconciler keeps them: every such server
// lists its address in the datastore under a lease (store.
// RegisterAPIEndpoint), and every server writes the EndpointSlice and
// Endpoints "kubernetes" from that list. They all write the same thing,
// so it does not matter which one wins.

const (
	// kubernetesEndpointsPeriod paces the rewrite; a dead server's lease
	// runs out in store.DefaultServerTTL and its address goes at the
	// next rewrite.
	kubernetesEndpointsPeriod = 5 * time.Second
	kubernetesService         = "kubernetes"
	// managedByAPIServer marks the slice as the API servers', which the
	// endpointslice controller leaves alone.
	managedByAPIServer = "kiln-apiserver"
)

// kubernetesServiceIP is the kubernetes Service's ClusterIP: the first
// address of the service CIDR, as the API server picks it.
func kubernetesServiceIP(serviceCIDR string) (string, error) {
	p, err := netip.ParsePrefix(serviceCIDR)
	if err != nil {
		return "", err
	}
	return p.Masked().Addr().Next().String(), nil
}

// apiEndpoint is where pods reach an API server serving on addr: addr
// itself when it is an IPv4 address pods can route to, the node's IP at
// addr's port when the server serves on every address; "" when pods
// cannot reach it (loopback, a host name, IPv6, which the proxy does not
// serve).
func apiEndpoint(addr, nodeIP string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	ip, err := netip.ParseAddr(host)
	if host == "" || err == nil && ip.IsUnspecified() {
		ip, err = netip.ParseAddr(nodeIP)
	}
	if err != nil || !ip.Is4() || ip.IsLoopback() || ip.IsUnspecified() {
		return ""
	}
	return net.JoinHostPort(ip.String(), port)
}

// serveNodeLocal makes an API server that listens on loopback only
// reachable from this node's pods: the kubernetes Service's ClusterIP goes
// on the node's link of local service addresses, which already holds the
// cluster DNS address, and the API serves there too, at its own port. The
// result is the endpoint to list. Pods reach it through their default
// route to the node; other machines only if they route the service CIDR
// to this node. An endpoint must not be loopback or link-local, so the
// ClusterIP it is.
func serveNodeLocal(ctx context.Context, g *errgroup.Group, api *apiserver.Server, serviceCIDR string) (string, error) {
	ipText, err := kubernetesServiceIP(serviceCIDR)
	if err != nil {
		return "", err
	}
	ip, err := netip.ParseAddr(ipText)
	if err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(api.Addr())
	if err != nil {
		return "", err
	}
	if err := dns.EnsureInterface(dns.DefaultInterface, ip); err != nil {
		return "", fmt.Errorf("node-local API address: %w", err)
	}
	addr := net.JoinHostPort(ip.String(), port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("node-local API address: %w", err)
	}
	g.Go(func() error { return api.Serve(ctx, ln) })
	return addr, nil
}

// runKubernetesEndpoints lists this server's endpoint ep (if pods can
// reach it) and keeps the kubernetes Service's endpoints, in g.
func runKubernetesEndpoints(ctx context.Context, g *errgroup.Group, rc *rest.Config, st *store.Store, ep string, log *slog.Logger) error {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	if ep != "" {
		g.Go(func() error { return st.RegisterAPIEndpoint(ctx, ep, 0) })
	}
	g.Go(func() error { return keepKubernetesEndpoints(ctx, cs, st, ep, log) })
	return nil
}

// keepKubernetesEndpoints writes the kubernetes Service's endpoints from
// the datastore's list until ctx ends; a failed round is logged and
// retried at the next.
func keepKubernetesEndpoints(ctx context.Context, cs kubernetes.Interface, st *store.Store, self string, log *slog.Logger) error {
	tick := time.NewTicker(kubernetesEndpointsPeriod)
	defer tick.Stop()
	for {
		if err := syncKubernetesEndpoints(ctx, cs, st, self); err != nil && ctx.Err() == nil {
			log.Warn("writing the kubernetes Service's endpoints", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// syncKubernetesEndpoints is one round of keepKubernetesEndpoints. All
// servers of a cluster serve on one port; addresses on another than the
// first listed are left out, as a Service port maps to one target port.
// self, this server's own endpoint ("" for none), counts even before its
// registration lands, so that pods reach a fresh server at once rather
// than a round later.
func syncKubernetesEndpoints(ctx context.Context, cs kubernetes.Interface, st *store.Store, self string) error {
	listed, err := st.APIEndpoints(ctx)
	if err != nil {
		return err
	}
	if self != "" && !slices.Contains(listed, self) {
		listed = append(listed, self)
	}
	var ips []string
	var port int32
	for _, ep := range listed {
		host, p, err := net.SplitHostPort(ep)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil {
			continue
		}
		if port == 0 {
			port = int32(n)
		}
		if int32(n) == port {
			ips = append(ips, host)
		}
	}
	slices.Sort(ips)
	if err := syncKubernetesSlice(ctx, cs, ips, port); err != nil {
		return err
	}
	return syncKubernetesEndpointsObject(ctx, cs, ips, port)
}

func syncKubernetesSlice(ctx context.Context, cs kubernetes.Interface, ips []string, port int32) error {
	want := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: kubernetesService, Namespace: metav1.NamespaceDefault, Labels: map[string]string{
			discoveryv1.LabelServiceName: kubernetesService, discoveryv1.LabelManagedBy: managedByAPIServer}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{},
	}
	if len(ips) > 0 {
		want.Ports = []discoveryv1.EndpointPort{{Name: new("https"), Port: &port, Protocol: new(corev1.ProtocolTCP)}}
	}
	for _, ip := range ips {
		want.Endpoints = append(want.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true), Serving: new(true), Terminating: new(false)}})
	}
	slicesAPI := cs.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault)
	cur, err := slicesAPI.Get(ctx, kubernetesService, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if len(ips) == 0 {
			return nil
		}
		_, err = slicesAPI.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // another server's round; the next one compares
		}
		return err
	case err != nil:
		return err
	}
	if apiequality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints) && apiequality.Semantic.DeepEqual(cur.Ports, want.Ports) &&
		cur.Labels[discoveryv1.LabelServiceName] == kubernetesService {
		return nil
	}
	cur = cur.DeepCopy()
	cur.Endpoints, cur.Ports, cur.AddressType = want.Endpoints, want.Ports, want.AddressType
	if cur.Labels == nil {
		cur.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		cur.Labels[k] = v
	}
	_, err = slicesAPI.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// syncKubernetesEndpointsObject writes core/v1 Endpoints "kubernetes" for
// clients that still read them.
func syncKubernetesEndpointsObject(ctx context.Context, cs kubernetes.Interface, ips []string, port int32) error {
	var subsets []corev1.EndpointSubset
	if len(ips) > 0 {
		sub := corev1.EndpointSubset{Ports: []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}}}
		for _, ip := range ips {
			sub.Addresses = append(sub.Addresses, corev1.EndpointAddress{IP: ip})
		}
		subsets = []corev1.EndpointSubset{sub}
	}
	api := cs.CoreV1().Endpoints(metav1.NamespaceDefault)
	cur, err := api.Get(ctx, kubernetesService, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if len(ips) == 0 {
			return nil
		}
		_, err = api.Create(ctx, &corev1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: kubernetesService, Namespace: metav1.NamespaceDefault,
				Labels: map[string]string{discoveryv1.LabelSkipMirror: "true"}},
			Subsets: subsets,
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	case err != nil:
		return err
	}
	if apiequality.Semantic.DeepEqual(cur.Subsets, subsets) {
		return nil
	}
	cur = cur.DeepCopy()
	cur.Subsets = subsets
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}
