package kubelet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Probe kinds, named as in events ("Liveness probe failed: ...").
const (
	probeLiveness  = "liveness"
	probeReadiness = "readiness"
	probeStartup   = "startup"
)

// maxProbeBody is how much of an HTTP probe's answer is read.
const maxProbeBody = 10 << 10

// prober runs the probes of running containers, one goroutine per probe,
// and keeps their results. A result change wakes the pod's worker, which
// reads ready, started and failed at its next sync.
type prober struct {
	k *Kubelet

	mu      sync.Mutex
	workers map[probeKey]*probeWorker
	results map[string]*probeResults // by container ID
	owners  map[string]types.UID     // container ID to pod UID
	wg      sync.WaitGroup
}

type probeKey struct {
	containerID string
	kind        string
}

// probeResults is what the probes of one container concluded.
type probeResults struct {
	ready   bool
	started bool
	// failedKind is the liveness or startup probe that failed; the
	// container is then restarted.
	failedKind string
}

type probeWorker struct {
	key       probeKey
	podUID    types.UID
	pod       *corev1.Pod
	container *corev1.Container
	probe     *corev1.Probe
	podIP     string
	startedAt time.Time
	stop      chan struct{}
}

func newProber(k *Kubelet) *prober {
	return &prober{k: k, workers: map[probeKey]*probeWorker{}, results: map[string]*probeResults{}, owners: map[string]types.UID{}}
}

// ready reports a running container's readiness: its readiness probe's
// verdict, or true without one, once started.
func (p *prober) ready(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.results[id]
	return ok && r.ready && r.started
}

// started reports whether a running container passed its startup probe
// (true without one).
func (p *prober) started(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.results[id]
	return ok && r.started
}

// failed reports a container whose liveness or startup probe failed.
func (p *prober) failed(id string) (bool, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.results[id]; ok && r.failedKind != "" {
		return true, r.failedKind
	}
	return false, ""
}

// sync starts the probes of the pod's running containers and stops those
// of containers that no longer run.
func (p *prober) sync(ctx context.Context, pod *corev1.Pod, pr *podRuntime) {
	running := map[string]bool{}
	for _, cs := range pr.all {
		if cs.State != runtime.ContainerRunning || pr.sandbox == nil || cs.SandboxID != pr.sandbox.ID {
			continue
		}
		c := findContainer(pod, containerName(cs))
		if c == nil {
			continue
		}
		running[cs.ID] = true
		p.ensure(ctx, pod, c, cs, pr.sandbox.IP)
	}
	p.mu.Lock()
	var stale []string
	for id, owner := range p.owners {
		if owner == pod.UID && !running[id] {
			stale = append(stale, id)
		}
	}
	p.mu.Unlock()
	for _, id := range stale {
		p.stopContainer(id)
	}
}

// ensure starts the probe workers of one running container.
func (p *prober) ensure(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cs *runtime.ContainerStatus, podIP string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.results[cs.ID]; !ok {
		r := &probeResults{started: c.StartupProbe == nil, ready: c.ReadinessProbe == nil}
		// A container the API already saw ready stays ready across a
		// kubelet restart until its probe says otherwise.
		if c.ReadinessProbe != nil && c.StartupProbe == nil {
			r.ready = wasReady(pod, c.Name, p.k.containerID(cs.ID))
		}
		p.results[cs.ID] = r
		p.owners[cs.ID] = pod.UID
	}
	for kind, probe := range map[string]*corev1.Probe{probeLiveness: c.LivenessProbe, probeReadiness: c.ReadinessProbe, probeStartup: c.StartupProbe} {
		if probe == nil {
			continue
		}
		key := probeKey{cs.ID, kind}
		if _, ok := p.workers[key]; ok {
			continue
		}
		if kind == probeStartup && p.results[cs.ID].started {
			continue
		}
		w := &probeWorker{key: key, podUID: pod.UID, pod: pod, container: c, probe: probe, podIP: podIP,
			startedAt: cs.StartedAt, stop: make(chan struct{})}
		p.workers[key] = w
		p.wg.Go(func() { p.run(ctx, w) })
	}
}

// wasReady reports whether the pod's status says the container with this
// ID is ready.
func wasReady(pod *corev1.Pod, name, containerID string) bool {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == name {
			return s.ContainerID == containerID && s.Ready
		}
	}
	return false
}

// stopContainer stops a container's probes and forgets their results.
func (p *prober) stopContainer(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, w := range p.workers {
		if key.containerID == id {
			close(w.stop)
			delete(p.workers, key)
		}
	}
	delete(p.results, id)
	delete(p.owners, id)
}

// stopPod stops every probe of a pod.
func (p *prober) stopPod(uid types.UID) {
	p.mu.Lock()
	var ids []string
	for id, owner := range p.owners {
		if owner == uid {
			ids = append(ids, id)
		}
	}
	p.mu.Unlock()
	for _, id := range ids {
		p.stopContainer(id)
	}
}

// stopAll stops every probe and waits for the workers.
func (p *prober) stopAll() {
	p.mu.Lock()
	for key, w := range p.workers {
		close(w.stop)
		delete(p.workers, key)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// run probes every periodSeconds after initialDelaySeconds (counted from
// the container's start) until stopped, the kubelet stops, a startup
// probe succeeds, or a liveness or startup probe fails for good.
func (p *prober) run(ctx context.Context, w *probeWorker) {
	period := time.Duration(max(w.probe.PeriodSeconds, 1)) * time.Second
	first := time.Until(w.startedAt.Add(time.Duration(w.probe.InitialDelaySeconds) * time.Second))
	timer := time.NewTimer(max(first, 0))
	defer timer.Stop()
	var successes, failures int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-timer.C:
		}
		if w.key.kind != probeStartup && !p.started(w.key.containerID) {
			timer.Reset(period)
			continue
		}
		ok, msg := p.k.probe(ctx, w.pod, w.container, w.probe, w.key.containerID, w.podIP)
		select {
		case <-w.stop:
			return
		default:
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
			if ctx.Err() == nil {
				kind := strings.ToUpper(w.key.kind[:1]) + w.key.kind[1:]
				p.k.event(w.pod, w.container.Name, corev1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, msg)
			}
		}
		if !p.record(w, ok, successes, failures) {
			return
		}
		timer.Reset(period)
	}
}

// record applies thresholds to one probe outcome and wakes the pod's
// worker when the verdict changed. It returns false when the worker is
// done.
func (p *prober) record(w *probeWorker, ok bool, successes, failures int32) bool {
	succ, fail := max(w.probe.SuccessThreshold, 1), max(w.probe.FailureThreshold, 1)
	p.mu.Lock()
	r, live := p.results[w.key.containerID]
	if !live {
		p.mu.Unlock()
		return false
	}
	changed, more := false, true
	switch w.key.kind {
	case probeReadiness:
		if ok && successes >= succ && !r.ready {
			r.ready, changed = true, true
		}
		if !ok && failures >= fail && r.ready {
			r.ready, changed = false, true
		}
	case probeLiveness:
		if !ok && failures >= fail {
			r.failedKind, changed, more = probeLiveness, true, false
		}
	case probeStartup:
		if ok {
			r.started, changed, more = true, true, false
		} else if failures >= fail {
			r.failedKind, changed, more = probeStartup, true, false
		}
	}
	if !more {
		delete(p.workers, w.key)
	}
	p.mu.Unlock()
	if changed {
		p.k.wakePod(w.podUID)
	}
	return more
}

// probe runs one probe and reports success, or why not.
func (k *Kubelet) probe(ctx context.Context, pod *corev1.Pod, c *corev1.Container, p *corev1.Probe, containerID, podIP string) (bool, string) {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := p.ProbeHandler
	switch {
	case h.Exec != nil:
		out, errOut, code, err := k.rt.ExecSync(ctx, containerID, h.Exec.Command, timeout)
		if err != nil {
			return false, err.Error()
		}
		if code != 0 {
			msg := strings.TrimSpace(string(out) + string(errOut))
			if msg == "" {
				msg = fmt.Sprintf("command %q exited with %d", strings.Join(h.Exec.Command, " "), code)
			}
			return false, msg
		}
		return true, ""
	case h.HTTPGet != nil:
		return httpProbe(ctx, h.HTTPGet, c, podIP)
	case h.TCPSocket != nil:
		port, err := resolvePort(h.TCPSocket.Port, c)
		if err != nil {
			return false, err.Error()
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(hostOr(h.TCPSocket.Host, podIP), strconv.Itoa(port)))
		if err != nil {
			return false, err.Error()
		}
		_ = conn.Close()
		return true, ""
	case h.GRPC != nil:
		return grpcProbe(ctx, h.GRPC, podIP)
	}
	return false, "probe has no handler"
}

func hostOr(host, podIP string) string {
	if host != "" {
		return host
	}
	return podIP
}

// resolvePort turns a probe's port (a number or a container port's name)
// into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal <= 0 || port.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("port %q not found in container %s", port.StrVal, c.Name)
}

// httpProbe GETs the probe's URL: 200 to 399 is success, as for the
// kubelet, which also skips certificate checks and keeps no connections.
func httpProbe(ctx context.Context, g *corev1.HTTPGetAction, c *corev1.Container, podIP string) (bool, string) {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return false, err.Error()
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(hostOr(g.Host, podIP), strconv.Itoa(port))}
	u, err = u.Parse(path)
	if err != nil {
		return false, err.Error()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "kube-probe/1.32")
	req.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as the kubelet's
		DisableKeepAlives: true,
		Proxy:             nil,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP probe failed with statuscode: %d%s", resp.StatusCode, bodySuffix(body))
}

func bodySuffix(body []byte) string {
	if s := strings.TrimSpace(string(body)); s != "" {
		return ", body: " + s
	}
	return ""
}

// grpcProbe asks the gRPC health service, as the kubelet does.
func grpcProbe(ctx context.Context, g *corev1.GRPCAction, podIP string) (bool, string) {
	conn, err := grpc.NewClient(net.JoinHostPort(podIP, strconv.Itoa(int(g.Port))), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false, err.Error()
	}
	defer conn.Close()
	service := ""
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return false, fmt.Sprintf("failed to connect service %q within %v: %v", net.JoinHostPort(podIP, strconv.Itoa(int(g.Port))), "timeout", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return false, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())
	}
	return true, ""
}

// runHook runs a postStart or preStop handler within timeout. It returns
// a message and an error when the hook failed.
func (k *Kubelet) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, podIP string, h *corev1.LifecycleHandler, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, max(timeout, time.Second))
	defer cancel()
	switch {
	case h.Exec != nil:
		out, errOut, code, err := k.rt.ExecSync(ctx, id, h.Exec.Command, max(timeout, time.Second))
		if err != nil {
			return err.Error(), err
		}
		if code != 0 {
			msg := fmt.Sprintf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), code, strings.TrimSpace(string(out)+string(errOut)))
			return msg, errors.New(msg)
		}
	case h.HTTPGet != nil:
		if ok, msg := httpProbe(ctx, h.HTTPGet, c, podIP); !ok {
			return msg, errors.New(msg)
		}
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	return "", nil
}

// probeFor is a container's probe of a kind.
func probeFor(c *corev1.Container, kind string) *corev1.Probe {
	switch kind {
	case probeLiveness:
		return c.LivenessProbe
	case probeStartup:
		return c.StartupProbe
	}
	return c.ReadinessProbe
}
