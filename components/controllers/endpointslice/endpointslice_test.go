package endpointslice_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"kiln.dev/kiln/components/controllers/endpointslice"
	"kiln.dev/kiln/components/testenv"
)

const (
	ns      = "default"
	timeout = 20 * time.Second
	// notReadyLabel on a pod keeps the stand-in kubelet from marking it
	// Ready.
	notReadyLabel = "test.kiln.dev/not-ready"
	// holdFinalizer keeps a deleted pod terminating until the test
	// removes it.
	holdFinalizer = "test.kiln.dev/hold"
)

// start runs a control plane, the stand-in kubelet and the controller
// until the test ends; tune adjusts the controller's Config.
func start(t *testing.T, tune ...func(*endpointslice.Config, *testenv.Env)) *testenv.Env {
	t.Helper()
	env := testenv.Start(t, testenv.Options{})
	testenv.StandInKubelet(t, env, testenv.StandInOptions{Ready: func(p *corev1.Pod) bool { return p.Labels[notReadyLabel] == "" }})
	f := informers.NewSharedInformerFactory(env.Clientset, 0)
	cfg := endpointslice.Config{
		Client: env.Clientset, Informers: f,
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, fn := range tune {
		fn(&cfg, env)
	}
	c, err := endpointslice.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	f.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		f.Shutdown()
	})
	return env
}

// eventually polls fn until it returns "" or the timeout passes.
func eventually(t *testing.T, what string, fn func() string) {
	t.Helper()
	eventuallyWithin(t, timeout, what, fn)
}

// eventuallyWithin polls fn until it returns "" or d passes.
func eventuallyWithin(t *testing.T, d time.Duration, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for time.Now().Before(deadline) {
		if last = fn(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// newService is a ClusterIP Service selecting app=<app> whose port "web"
// targets the container port named "http".
func newService(name, app string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "web", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

func createService(t *testing.T, env *testenv.Env, svc *corev1.Service) *corev1.Service {
	t.Helper()
	out, err := env.Clientset.CoreV1().Services(svc.Namespace).Create(t.Context(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// newPod is a pod labelled app=<app> whose container port "http" is
// 8080.
func newPod(name, app string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/app:1",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
}

func createPods(t *testing.T, env *testenv.Env, pods ...*corev1.Pod) {
	t.Helper()
	for _, p := range pods {
		if _, err := env.Clientset.CoreV1().Pods(p.Namespace).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// runningPods waits until the stand-in kubelet gave every named pod an IP
// and returns the IPs by pod name.
func runningPods(t *testing.T, env *testenv.Env, names ...string) map[string]string {
	t.Helper()
	return runningPodsWithin(t, env, timeout, names...)
}

func runningPodsWithin(t *testing.T, env *testenv.Env, d time.Duration, names ...string) map[string]string {
	t.Helper()
	ips := map[string]string{}
	eventuallyWithin(t, d, "pods running", func() string {
		list, err := env.Clientset.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			return err.Error()
		}
		for _, p := range list.Items {
			if p.Status.PodIP != "" {
				ips[p.Name] = p.Status.PodIP
			}
		}
		for _, n := range names {
			if ips[n] == "" {
				return n + " has no IP yet"
			}
		}
		return ""
	})
	return ips
}

// managedSlices lists the controller's slices of the Service.
func managedSlices(t *testing.T, env *testenv.Env, svc string) []discoveryv1.EndpointSlice {
	t.Helper()
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: endpointslice.ControllerName})
	list, err := env.Clientset.DiscoveryV1().EndpointSlices(ns).List(t.Context(), metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// endpointState summarises an endpoint as "pod ip ready/serving/terminating".
func endpointState(ep discoveryv1.Endpoint) string {
	b := func(p *bool) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	name := ""
	if ep.TargetRef != nil {
		name = ep.TargetRef.Name
	}
	return fmt.Sprintf("%s %s %s/%s/%s", name, strings.Join(ep.Addresses, ","), b(ep.Conditions.Ready), b(ep.Conditions.Serving), b(ep.Conditions.Terminating))
}

// sliceEndpoints is the sorted endpoint states across the Service's slices.
func sliceEndpoints(t *testing.T, env *testenv.Env, svc string) []string {
	t.Helper()
	var out []string
	for _, s := range managedSlices(t, env, svc) {
		for _, ep := range s.Endpoints {
			out = append(out, endpointState(ep))
		}
	}
	slices.Sort(out)
	return out
}

// want is the sorted endpoint states expected for the pods.
func want(ips map[string]string, state string, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s %s %s", n, ips[n], state))
	}
	slices.Sort(out)
	return out
}

// endpointsIPs is the Endpoints object's ready and not-ready "ip:port"s,
// sorted.
func endpointsIPs(t *testing.T, env *testenv.Env, svc string) (ready, notReady []string, err error) {
	t.Helper()
	ep, err := env.Clientset.CoreV1().Endpoints(ns).Get(t.Context(), svc, metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, ss := range ep.Subsets {
		for _, a := range ss.Addresses {
			for _, p := range ss.Ports {
				ready = append(ready, fmt.Sprintf("%s:%d", a.IP, p.Port))
			}
		}
		for _, a := range ss.NotReadyAddresses {
			for _, p := range ss.Ports {
				notReady = append(notReady, fmt.Sprintf("%s:%d", a.IP, p.Port))
			}
		}
	}
	slices.Sort(ready)
	slices.Sort(notReady)
	return ready, notReady, nil
}

func ipPorts(ips map[string]string, port int, names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s:%d", ips[n], port))
	}
	slices.Sort(out)
	return out
}

// waitEndpoints waits until the Endpoints object lists exactly these
// ready and not-ready addresses.
func waitEndpoints(t *testing.T, env *testenv.Env, svc string, ready, notReady []string) {
	t.Helper()
	eventually(t, "endpoints of "+svc, func() string {
		r, nr, err := endpointsIPs(t, env, svc)
		if err != nil {
			return err.Error()
		}
		if !slices.Equal(r, ready) || !slices.Equal(nr, notReady) {
			return fmt.Sprintf("ready %v notReady %v, want %v and %v", r, nr, ready, notReady)
		}
		return ""
	})
}

// waitSliceEndpoints waits until the Service's slices hold exactly these
// endpoint states.
func waitSliceEndpoints(t *testing.T, env *testenv.Env, svc string, states []string) {
	t.Helper()
	states = slices.Sorted(slices.Values(states))
	eventually(t, "slices of "+svc, func() string {
		if got := sliceEndpoints(t, env, svc); !slices.Equal(got, states) {
			return fmt.Sprintf("endpoints\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(states, "\n"))
		}
		return ""
	})
}

// setPodReady sets the pod's Ready condition, as a kubelet would.
func setPodReady(t *testing.T, env *testenv.Env, name string, ready bool) {
	t.Helper()
	pods := env.Clientset.CoreV1().Pods(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		for i := range p.Status.Conditions {
			if c := &p.Status.Conditions[i]; c.Type == corev1.PodReady || c.Type == corev1.ContainersReady {
				c.Status, c.LastTransitionTime = st, metav1.Now()
			}
		}
		_, err = pods.UpdateStatus(t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestController_Sync_readyPods: three ready pods give one IPv4 slice
// with three ready endpoints on the container port the named targetPort
// resolves to, owned by the Service, and an Endpoints object listing them.
func TestController_Sync_readyPods(t *testing.T) {
	t.Parallel()
	env := start(t)
	svc := createService(t, env, newService("web", "web"))
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"), newPod("web-2", "web"), newPod("other", "other"))
	ips := runningPods(t, env, "web-0", "web-1", "web-2")

	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "web-2"))
	got := managedSlices(t, env, "web")
	if len(got) != 1 {
		t.Fatalf("got %d slices, want 1", len(got))
	}
	s := got[0]
	if s.AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("addressType %q, want IPv4", s.AddressType)
	}
	if !strings.HasPrefix(s.Name, "web-") || len(s.Name) != len("web-")+5 {
		t.Errorf("name %q, want web-<5 random>", s.Name)
	}
	if len(s.Ports) != 1 || *s.Ports[0].Name != "web" || *s.Ports[0].Port != 8080 || *s.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports %+v, want web 8080/TCP", s.Ports)
	}
	if ref := metav1.GetControllerOf(&s); ref == nil || ref.Kind != "Service" || ref.Name != "web" || ref.UID != svc.UID {
		t.Errorf("controller ref %+v, want Service web %s", ref, svc.UID)
	}
	if s.Labels["tier"] != "front" {
		t.Errorf("labels %v: want the Service's labels copied", s.Labels)
	}
	for _, ep := range s.Endpoints {
		if ep.NodeName == nil || *ep.NodeName != "node-1" || ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" || ep.TargetRef.UID == "" {
			t.Errorf("endpoint %s: nodeName %v targetRef %+v", endpointState(ep), ep.NodeName, ep.TargetRef)
		}
	}
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1", "web-2"), nil)
	ep, err := env.Clientset.CoreV1().Endpoints(ns).Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Labels[discoveryv1.LabelSkipMirror] != "true" || ep.Labels["tier"] != "front" {
		t.Errorf("endpoints labels %v", ep.Labels)
	}
	if p := ep.Subsets[0].Ports; len(p) != 1 || p[0].Name != "web" || p[0].Port != 8080 {
		t.Errorf("endpoints ports %+v", p)
	}
}

// TestController_Sync_podNotReady: a pod that stops being Ready turns
// not ready (and not serving) in its slice and moves to the Endpoints'
// notReadyAddresses; Ready again, it moves back.
func TestController_Sync_podNotReady(t *testing.T) {
	t.Parallel()
	env := start(t)
	createService(t, env, newService("web", "web"))
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"), newPod("web-2", "web"))
	ips := runningPods(t, env, "web-0", "web-1", "web-2")
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "web-2"))

	setPodReady(t, env, "web-1", false)
	waitSliceEndpoints(t, env, "web", append(want(ips, "true/true/false", "web-0", "web-2"), want(ips, "false/false/false", "web-1")...))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-2"), ipPorts(ips, 8080, "web-1"))

	setPodReady(t, env, "web-1", true)
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "web-2"))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1", "web-2"), nil)
}

// TestController_Sync_podTerminating: a pod deleted with a grace period
// stays in its slice as terminating (not ready, still serving) and
// leaves the Endpoints object; once it is gone, it leaves the slice. A
// finalizer holds the pod terminating, since the stand-in kubelet removes
// it at once.
func TestController_Sync_podTerminating(t *testing.T) {
	t.Parallel()
	env := start(t)
	createService(t, env, newService("web", "web"))
	held := newPod("web-2", "web")
	held.Finalizers = []string{holdFinalizer}
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"), held)
	ips := runningPods(t, env, "web-0", "web-1", "web-2")
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "web-2"))

	pods := env.Clientset.CoreV1().Pods(ns)
	grace := int64(30)
	if err := pods.Delete(t.Context(), "web-2", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	waitSliceEndpoints(t, env, "web", append(want(ips, "true/true/false", "web-0", "web-1"), want(ips, "false/true/true", "web-2")...))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1"), nil)

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := pods.Get(t.Context(), "web-2", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Finalizers = nil
		_, err = pods.Update(t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod gone", func() string {
		if _, err := pods.Get(t.Context(), "web-2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("get: %v", err)
		}
		return ""
	})
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1"))

	// Deleted without a finalizer, the stand-in kubelet removes it at
	// once: its endpoint goes too.
	if err := pods.Delete(t.Context(), "web-1", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0"))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0"), nil)
}

// TestController_Sync_selectorChanged: changing the selector moves the
// endpoints to the newly selected pods; removing it leaves the Service to
// its user, and the controller's slices go.
func TestController_Sync_selectorChanged(t *testing.T) {
	t.Parallel()
	env := start(t)
	createService(t, env, newService("web", "a"))
	createPods(t, env, newPod("a-0", "a"), newPod("a-1", "a"), newPod("b-0", "b"), newPod("b-1", "b"), newPod("b-2", "b"))
	ips := runningPods(t, env, "a-0", "a-1", "b-0", "b-1", "b-2")
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "a-0", "a-1"))

	services := env.Clientset.CoreV1().Services(ns)
	update := func(mutate func(*corev1.Service)) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			svc, err := services.Get(t.Context(), "web", metav1.GetOptions{})
			if err != nil {
				return err
			}
			mutate(svc)
			_, err = services.Update(t.Context(), svc, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	update(func(svc *corev1.Service) { svc.Spec.Selector = map[string]string{"app": "b"} })
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "b-0", "b-1", "b-2"))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "b-0", "b-1", "b-2"), nil)

	// A pod relabelled into the selector joins.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := env.Clientset.CoreV1().Pods(ns).Get(t.Context(), "a-0", metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Labels["app"] = "b"
		_, err = env.Clientset.CoreV1().Pods(ns).Update(t.Context(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "a-0", "b-0", "b-1", "b-2"))

	update(func(svc *corev1.Service) { svc.Spec.Selector = nil })
	eventually(t, "slices gone without a selector", func() string {
		if got := managedSlices(t, env, "web"); len(got) > 0 {
			return fmt.Sprintf("%d slices left", len(got))
		}
		return ""
	})
}

// TestController_Sync_serviceDeleted: deleting the Service deletes its
// slices and its Endpoints object, without a garbage collector.
func TestController_Sync_serviceDeleted(t *testing.T) {
	t.Parallel()
	env := start(t)
	createService(t, env, newService("web", "web"))
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"))
	ips := runningPods(t, env, "web-0", "web-1")
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1"))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1"), nil)

	if err := env.Clientset.CoreV1().Services(ns).Delete(t.Context(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "slices and endpoints gone", func() string {
		if got := managedSlices(t, env, "web"); len(got) > 0 {
			return fmt.Sprintf("%d slices left", len(got))
		}
		if _, err := env.Clientset.CoreV1().Endpoints(ns).Get(t.Context(), "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Sprintf("endpoints: %v", err)
		}
		return ""
	})
}

// TestController_Sync_manyPods: 250 pods fill three slices of at most
// 100 endpoints, each pod in exactly one. To keep the test short under
// -race, the pods are created bound to the stand-in kubelet's node (it
// then makes one write per pod, not two), and pod changes are batched
// over 250ms, as a busy cluster would set it: without, nearly every pod
// status write rewrites a slice and a 250-address Endpoints object.
func TestController_Sync_manyPods(t *testing.T) {
	t.Parallel()
	env := start(t, func(cfg *endpointslice.Config, _ *testenv.Env) { cfg.BatchPeriod = 250 * time.Millisecond })
	createService(t, env, newService("web", "web"))
	names := make([]string, 250)
	var g errgroup.Group
	g.SetLimit(4)
	for i := range names {
		names[i] = fmt.Sprintf("web-%03d", i)
		g.Go(func() error {
			p := newPod(names[i], "web")
			p.Spec.NodeName = "node-1"
			_, err := env.Clientset.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	ips := runningPodsWithin(t, env, 40*time.Second, names...)
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", names...))
	got := managedSlices(t, env, "web")
	if len(got) != 3 {
		t.Fatalf("got %d slices, want 3", len(got))
	}
	for _, s := range got {
		if len(s.Endpoints) > endpointslice.DefaultMaxEndpointsPerSlice {
			t.Errorf("slice %s has %d endpoints, want at most %d", s.Name, len(s.Endpoints), endpointslice.DefaultMaxEndpointsPerSlice)
		}
	}
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, names...), nil)
}

// roundTripFunc is an http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// countWrites gives the controller a client that counts its write
// requests (anything but GET) in n. The API server turns an update that
// changes nothing into a no-op without a watch event, so only the
// requests show a controller that rewrites what is already in step.
func countWrites(n *atomic.Int64) func(*endpointslice.Config, *testenv.Env) {
	return func(cfg *endpointslice.Config, env *testenv.Env) {
		rc := rest.CopyConfig(env.RESTConfig)
		rc.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if r.Method != http.MethodGet {
					n.Add(1)
				}
				return rt.RoundTrip(r)
			})
		})
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			panic(err) // only a bad config fails, and this one is env's
		}
		cfg.Client = cs
	}
}

// TestController_Sync_noUpdateWhenNothingChanged: once in step, syncs
// caused by changes that do not affect endpoints (a Service annotation,
// a pod label outside the selector) send no write over a quiet second. A
// real change then does.
func TestController_Sync_noUpdateWhenNothingChanged(t *testing.T) {
	t.Parallel()
	var writes atomic.Int64
	env := start(t, countWrites(&writes))
	createService(t, env, newService("web", "web"))
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"), newPod("web-2", "web"))
	ips := runningPods(t, env, "web-0", "web-1", "web-2")
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "web-2"))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1", "web-2"), nil)

	ctx, cs := t.Context(), env.Clientset
	poke := func(get func() (metav1.Object, error), update func(metav1.Object) error, label bool) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			o, err := get()
			if err != nil {
				return err
			}
			if label {
				l := o.GetLabels()
				l["poke"] = fmt.Sprint(time.Now().UnixNano())
				o.SetLabels(l)
			} else {
				o.SetAnnotations(map[string]string{"poke": time.Now().String()})
			}
			return update(o)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	before := writes.Load()
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		// Every 100ms, annotate the Service and relabel a pod outside the
		// selector: each makes the controller sync the Service again.
		poke(func() (metav1.Object, error) { return cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{}) },
			func(o metav1.Object) error {
				_, err := cs.CoreV1().Services(ns).Update(ctx, o.(*corev1.Service), metav1.UpdateOptions{})
				return err
			}, false)
		poke(func() (metav1.Object, error) { return cs.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{}) },
			func(o metav1.Object) error {
				_, err := cs.CoreV1().Pods(ns).Update(ctx, o.(*corev1.Pod), metav1.UpdateOptions{})
				return err
			}, true)
		time.Sleep(100 * time.Millisecond)
	}
	if n := writes.Load() - before; n != 0 {
		t.Errorf("%d writes with nothing changed", n)
	}

	before = writes.Load()
	setPodReady(t, env, "web-2", false)
	waitSliceEndpoints(t, env, "web", append(want(ips, "true/true/false", "web-0", "web-1"), want(ips, "false/false/false", "web-2")...))
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1"), ipPorts(ips, 8080, "web-2"))
	if n := writes.Load() - before; n != 2 {
		t.Errorf("%d writes for a pod turning not ready, want 2 (slice and Endpoints)", n)
	}
}

// TestController_Sync_portSets: a pod without the named container port is
// left out of the slice of that port set; it lands in a slice of its own
// (no ports) and out of the Endpoints object. A Service with a numeric
// targetPort serves every pod.
func TestController_Sync_portSets(t *testing.T) {
	t.Parallel()
	env := start(t)
	createService(t, env, newService("web", "web"))
	num := newService("num", "web")
	num.Spec.Ports[0].TargetPort = intstr.FromInt32(9090)
	createService(t, env, num)
	bare := newPod("bare", "web")
	bare.Spec.Containers[0].Ports = nil
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"), bare)
	ips := runningPods(t, env, "web-0", "web-1", "bare")

	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "bare"))
	byPorts := map[string][]string{}
	for _, s := range managedSlices(t, env, "web") {
		key := "none"
		if len(s.Ports) > 0 {
			key = fmt.Sprint(*s.Ports[0].Port)
		}
		for _, ep := range s.Endpoints {
			byPorts[key] = append(byPorts[key], ep.TargetRef.Name)
		}
		slices.Sort(byPorts[key])
	}
	if fmt.Sprint(byPorts) != "map[8080:[web-0 web-1] none:[bare]]" {
		t.Errorf("endpoints by port: %v", byPorts)
	}
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1"), nil)

	waitSliceEndpoints(t, env, "num", want(ips, "true/true/false", "web-0", "web-1", "bare"))
	waitEndpoints(t, env, "num", ipPorts(ips, 9090, "web-0", "web-1", "bare"), nil)
}

// TestController_Sync_headlessAndNotReady: a headless Service without
// ports gets port-less slices labelled headless; publishNotReadyAddresses
// makes a not-ready pod's endpoint ready. A Service selecting no pods
// keeps one empty placeholder slice.
func TestController_Sync_headlessAndNotReady(t *testing.T) {
	t.Parallel()
	env := start(t)
	headless := newService("db", "db")
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	headless.Spec.Ports = nil
	headless.Spec.PublishNotReadyAddresses = true
	createService(t, env, headless)
	createService(t, env, newService("empty", "nothing"))
	slow := newPod("db-1", "db")
	slow.Labels[notReadyLabel] = "true"
	createPods(t, env, newPod("db-0", "db"), slow)
	ips := runningPods(t, env, "db-0", "db-1")

	waitSliceEndpoints(t, env, "db", append(want(ips, "true/true/false", "db-0"), want(ips, "true/false/false", "db-1")...))
	s := managedSlices(t, env, "db")[0]
	if _, ok := s.Labels[corev1.IsHeadlessService]; !ok || len(s.Ports) != 0 {
		t.Errorf("headless slice: labels %v ports %v", s.Labels, s.Ports)
	}
	eventually(t, "headless endpoints", func() string {
		ep, err := env.Clientset.CoreV1().Endpoints(ns).Get(t.Context(), "db", metav1.GetOptions{})
		if err != nil {
			return err.Error()
		}
		var got []string
		for _, ss := range ep.Subsets {
			if len(ss.Ports) > 0 || len(ss.NotReadyAddresses) > 0 {
				return fmt.Sprintf("subset %+v", ss)
			}
			for _, a := range ss.Addresses {
				got = append(got, a.IP)
			}
		}
		slices.Sort(got)
		if w := []string{ips["db-0"], ips["db-1"]}; !slices.Equal(got, slices.Sorted(slices.Values(w))) {
			return fmt.Sprintf("addresses %v, want %v", got, w)
		}
		return ""
	})

	eventually(t, "placeholder slice", func() string {
		got := managedSlices(t, env, "empty")
		if len(got) != 1 || len(got[0].Endpoints) != 0 || len(got[0].Ports) != 0 {
			return fmt.Sprintf("slices %+v", got)
		}
		return ""
	})
	waitEndpoints(t, env, "empty", nil, nil)
}

// TestController_Sync_selectorlessLeftAlone: a Service without a selector
// gets no slices and its hand-written Endpoints object and slice are left
// as they are.
func TestController_Sync_selectorlessLeftAlone(t *testing.T) {
	t.Parallel()
	env := start(t)
	ctx, cs := t.Context(), env.Clientset
	manual := newService("manual", "")
	manual.Spec.Selector = nil
	createService(t, env, manual)
	ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "manual", Namespace: ns}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}}, Ports: []corev1.EndpointPort{{Name: "web", Port: 8080}},
	}}}
	ep, err := cs.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	port, name := int32(8080), "web"
	userSlice, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "manual-1", Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "manual", discoveryv1.LabelManagedBy: "someone-else"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"192.0.2.10"}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// A Service created later has its slices once the controller has
	// been through the earlier one.
	createService(t, env, newService("web", "web"))
	createPods(t, env, newPod("web-0", "web"))
	ips := runningPods(t, env, "web-0")
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0"))

	if got := managedSlices(t, env, "manual"); len(got) != 0 {
		t.Errorf("controller made %d slices for a Service without a selector", len(got))
	}
	gotEp, err := cs.CoreV1().Endpoints(ns).Get(ctx, "manual", metav1.GetOptions{})
	if err != nil || gotEp.ResourceVersion != ep.ResourceVersion {
		t.Errorf("hand-written endpoints changed: %v %+v", err, gotEp)
	}
	gotSlice, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, "manual-1", metav1.GetOptions{})
	if err != nil || gotSlice.ResourceVersion != userSlice.ResourceVersion {
		t.Errorf("user slice changed: %v %+v", err, gotSlice)
	}
}

// TestController_Run_kubectlDescribeService: kubectl describe service
// shows the pods' addresses on its Endpoints line.
func TestController_Run_kubectlDescribeService(t *testing.T) {
	t.Parallel()
	bin := testenv.Kubectl(t)
	env := start(t)
	createService(t, env, newService("web", "web"))
	createPods(t, env, newPod("web-0", "web"), newPod("web-1", "web"), newPod("web-2", "web"))
	ips := runningPods(t, env, "web-0", "web-1", "web-2")
	waitEndpoints(t, env, "web", ipPorts(ips, 8080, "web-0", "web-1", "web-2"), nil)
	waitSliceEndpoints(t, env, "web", want(ips, "true/true/false", "web-0", "web-1", "web-2"))

	home := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", env.Kubeconfig, "--cache-dir", filepath.Join(home, "cache"),
		"describe", "service", "web", "--namespace", ns)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl describe service: %v: %s", err, errb.String())
	}
	var line string
	for l := range strings.Lines(out.String()) {
		if strings.HasPrefix(l, "Endpoints:") {
			line = strings.TrimSpace(strings.TrimPrefix(l, "Endpoints:"))
		}
	}
	for _, a := range ipPorts(ips, 8080, "web-0", "web-1", "web-2") {
		if !strings.Contains(line, a) {
			t.Errorf("Endpoints line %q lacks %s; output:\n%s", line, a, out.String())
		}
	}
}
