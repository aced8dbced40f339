package ingress

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// targetKey carries the chosen endpoint from ServeHTTP to the
// ReverseProxy's Rewrite.
type targetKey struct{}

// ServeHTTP routes one request by the current table: 404 when no rule
// matches, 503 when the matched Service has no ready endpoint, else to
// one of its ready endpoints in turn (502 if that does not answer).
func (c *Controller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b := c.routes.Load().route(r.Host, r.URL.Path)
	if b == nil {
		http.NotFound(w, r)
		return
	}
	target, err := c.endpoint(b)
	if err != nil {
		c.log.Debug("no endpoint", logIngress, b.ingress, logService, b.namespace+"/"+b.service, logError, err)
		http.Error(w, "503 service unavailable: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	c.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, target)))
}

// endpoint picks the next ready endpoint of b's Service port, round
// robin, as "ip:port".
func (c *Controller) endpoint(b *backend) (string, error) {
	svc, err := c.services.Services(b.namespace).Get(b.service)
	if apierrors.IsNotFound(err) {
		return "", errNoService
	}
	if err != nil {
		return "", err
	}
	// The backend names a Service port; the EndpointSlices carry that
	// port's name with the number each endpoint listens on.
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		if b.port.Name != "" {
			return p.Name == b.port.Name
		}
		return p.Port == b.port.Number
	})
	if i < 0 {
		return "", errNoPort
	}
	sp := svc.Spec.Ports[i]
	if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
		return "", errNoPort
	}
	objs, err := c.sliceIndex.ByIndex(indexService, b.namespace+"/"+b.service)
	if err != nil {
		return "", err
	}
	var eps []string
	for _, o := range objs {
		s := o.(*discoveryv1.EndpointSlice)
		var port int32
		for _, p := range s.Ports {
			if p.Port != nil && ptrOr(p.Name, "") == sp.Name && ptrOr(p.Protocol, corev1.ProtocolTCP) == corev1.ProtocolTCP {
				port = *p.Port
				break
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			// Ready unset means ready, as the EndpointSlice API says.
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				eps = append(eps, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	if len(eps) == 0 {
		return "", errNoEndpoints
	}
	// The index's order is a map's; sorted, the round robin visits each
	// endpoint once per turn. An endpoint in two slices (mid-move) is
	// one.
	slices.Sort(eps)
	eps = slices.Compact(eps)
	return eps[(b.next.Add(1)-1)%uint64(len(eps))], nil
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// newReverseProxy forwards to the endpoint ServeHTTP chose, keeping the
// client's Host, setting the X-Forwarded headers (client-sent ones are
// dropped, as Traefik does for untrusted clients) and flushing every
// write, so that streams pass as they come; Upgrade (WebSocket)
// requests become a two-way copy.
func (c *Controller) newReverseProxy(dialTimeout time.Duration) *httputil.ReverseProxy {
	transport := &http.Transport{
		// Never a proxy from the environment: endpoints are cluster
		// addresses.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1000,
		MaxIdleConnsPerHost:   100,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = pr.In.Context().Value(targetKey{}).(string)
			pr.SetXForwarded()
			if host, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				pr.Out.Header.Set("X-Real-Ip", host)
			}
			if la, ok := pr.In.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				if _, port, err := net.SplitHostPort(la.String()); err == nil {
					pr.Out.Header.Set("X-Forwarded-Port", port)
				}
			}
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Debug("endpoint failed", logTarget, r.Context().Value(targetKey{}), logHost, r.Host, logError, err)
			}
			http.Error(w, "502 bad gateway", http.StatusBadGateway)
		},
	}
}
