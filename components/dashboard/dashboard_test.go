package dashboard_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kiln.dev/kiln/components/dashboard"
	"kiln.dev/kiln/components/testenv"
	"kiln.dev/kiln/reconcile"
)

// waitOverview waits until the overview explains all four stuck pods, so
// every informer has seen the fixture.
func waitOverview(t *testing.T, s *stack) string {
	t.Helper()
	var body string
	eventually(t, "overview shows the fixture", func() string {
		_, body = s.get(t, "/")
		for _, w := range []string{"Insufficient memory", "CrashLoopBackOff", "ReadinessProbeFailed", "ErrImagePull", "<b>3</b> Healthy"} {
			if !strings.Contains(body, w) {
				return "no " + w
			}
		}
		return ""
	})
	return body
}

func TestDashboard_overview(t *testing.T) {
	s := startStack(t, nil)
	plantFixture(t, s)
	body := waitOverview(t, s)
	pageContains(t, "overview", body,
		// The source: revision, commit, author, last sync and its result.
		"main@"+fixtureHash[:12], html.EscapeString(firstLineOf(hostileCommit)), "Ada Lovelace &lt;ada@example.com&gt;",
		"https://git.example.com/shop.git", "<code>main</code>", "succeeded", "took 420ms",
		// Counts: namespace, ConfigMap and Secret are healthy; three
		// Deployments, the Job and the Service are progressing.
		"<b>3</b> Healthy", "<b>5</b> Progressing", "<b>0</b> Degraded", "<b>0</b> Missing", "<b>0</b> Unknown", "8 managed",
		// The chains, to the root causes.
		"web-7d9", "web-7d9-x2", schedulingMsg,
		"api-5f6", "api-5f6-k8", "CrashLoopBackOff", "exit code 1", "logs unavailable",
		"cache-66b-q1", "ReadinessProbeFailed", readinessMsg,
		"migrate-zz9", "ErrImagePull", "image registry.example/shop/migrate:9 not found",
		// The node: requested (api 250m/256Mi + cache 500m/1Gi) of allocatable.
		"node-1", "Ready", "750m / 2", "1.2Gi / 4.0Gi",
	)
	if strings.Contains(body, "tok3n-in-url") {
		t.Error("the repository URL's credentials are on the page")
	}

	t.Run("fragment", func(t *testing.T) {
		_, frag := s.get(t, "/?fragment=1")
		if strings.Contains(frag, "<html") || !strings.Contains(frag, "Insufficient memory") {
			t.Errorf("fragment is not the main content only:\n%.400s", frag)
		}
	})

	t.Run("api status", func(t *testing.T) {
		code, body := s.get(t, "/api/status")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		var ov dashboard.Overview
		if err := json.Unmarshal([]byte(body), &ov); err != nil {
			t.Fatal(err)
		}
		if len(ov.Sources) != 1 || ov.Sources[0].Revision != fixtureRev || ov.Sources[0].Counts.Progressing != 5 || ov.Sources[0].Counts.Total != 8 {
			t.Errorf("sources: %+v", ov.Sources)
		}
		if !ov.Synced || len(ov.Nodes) != 1 || ov.Nodes[0].CPU.Allocated != 750 || ov.Nodes[0].CPU.Allocatable != 2000 {
			t.Errorf("nodes: %+v", ov.Nodes)
		}
		causes := map[string]string{}
		for _, c := range ov.NotReady {
			for _, p := range c.Paths {
				causes[c.Object.Name+"/"+p.Cause.Reason] = p.Cause.Message
			}
		}
		for _, want := range []string{"web/Unschedulable", "api/CrashLoopBackOff", "cache/ReadinessProbeFailed", "migrate/ErrImagePull"} {
			if _, ok := causes[want]; !ok {
				t.Errorf("no cause %s in %v", want, causes)
			}
		}
	})

	t.Run("source page", func(t *testing.T) {
		_, body := s.get(t, "/sources/"+fixtureSource)
		pageContains(t, "source page", body, "Sync history", "failed", "spec.replicas: Invalid value: -1",
			html.EscapeString(hostileFile), "420ms", "main@fedcba987654")
	})

	t.Run("objects filter", func(t *testing.T) {
		_, body := s.get(t, "/objects?source=shop&health=Progressing")
		pageContains(t, "objects", body, "Deployment</span> web", "Job</span> migrate", "Service</span> web")
		if strings.Contains(body, "ConfigMap</span> settings") {
			t.Error("healthy ConfigMap listed under Progressing")
		}
		_, body = s.get(t, "/objects?namespace=default")
		if strings.Contains(body, "Deployment</span> web") {
			t.Error("namespace filter ignored")
		}
	})

	t.Run("pods page", func(t *testing.T) {
		_, body := s.get(t, "/pods?source=shop")
		pageContains(t, "pods", body, "web-7d9-x2", "api-5f6-k8", "CrashLoopBackOff", "ErrImagePull", "unscheduled")
		_, body = s.get(t, "/pods?node=node-1")
		if strings.Contains(body, "web-7d9-x2") {
			t.Error("node filter ignored")
		}
	})

	t.Run("nodes page", func(t *testing.T) {
		_, body := s.get(t, "/nodes")
		pageContains(t, "nodes", body, "node-1", "10.0.0.11", "v1.37.2-kiln", "750m / 2")
	})

	t.Run("events page", func(t *testing.T) {
		_, body := s.get(t, "/events?type=Warning&source=shop")
		pageContains(t, "events", body, "Unhealthy", readinessMsg, "cache-66b-q1")
	})

	t.Run("object page", func(t *testing.T) {
		code, body := s.get(t, "/object?group=apps&version=v1&kind=Deployment&namespace=shop&name=api")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		pageContains(t, "deployment page", body, "kind: Deployment", "CrashLoopBackOff", "ReplicaSet</span> api-5f6",
			html.EscapeString(hostileFile), "Why not ready")
		_, body = s.get(t, "/object?version=v1&kind=Pod&namespace=shop&name=cache-66b-q1")
		pageContains(t, "pod page", body, "Deployment</span> cache", "ReplicaSet</span> cache-66b", readinessMsg, "Unhealthy")
		code, _ = s.get(t, "/object?version=v1&kind=Pod&namespace=shop&name=nope")
		if code != http.StatusNotFound {
			t.Errorf("missing object: status %d, want 404", code)
		}
	})
}

func firstLineOf(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// Every surface the dashboard has, for the no-secret and XSS checks.
var surfaces = []string{
	"/", "/?fragment=1", "/api/status", "/metrics", "/objects", "/objects?kind=Secret", "/pods", "/nodes", "/events",
	"/sources/shop", "/sources/shop?fragment=1",
	"/object?version=v1&kind=Secret&namespace=shop&name=creds",
	"/object?version=v1&kind=Secret&namespace=shop&name=creds&fragment=1",
	"/object?kind=Secret&namespace=shop&name=creds",
	"/object?version=v1&kind=ConfigMap&namespace=shop&name=settings",
	"/object?version=v1&kind=Namespace&name=shop",
	"/object?group=apps&version=v1&kind=Deployment&namespace=shop&name=web",
	"/object?group=gitops.kiln.dev&version=v1alpha1&kind=Source&name=shop",
	"/events?source=shop",
}

func TestDashboard_secretsNeverShown(t *testing.T) {
	s := startStack(t, func(c *dashboard.Config) { c.Gatherer = gatherer(t) })
	plantFixture(t, s)
	waitOverview(t, s)
	forbidden := []string{secretCanary, base64.StdEncoding.EncodeToString([]byte(secretCanary)), "tok3n-in-url"}
	for _, path := range surfaces {
		code, body := s.get(t, path)
		if code != http.StatusOK {
			t.Errorf("%s: status %d", path, code)
		}
		for _, f := range forbidden {
			if strings.Contains(body, f) {
				t.Errorf("%s shows %q", path, f)
			}
		}
	}
	_, body := s.get(t, "/object?version=v1&kind=Secret&namespace=shop&name=creds")
	pageContains(t, "secret page", body, "password: &lt;hidden&gt;", "kind: Secret", "apps/creds.yaml")
	if strings.Contains(body, "last-applied") {
		t.Error("a Secret's last-applied annotation is shown")
	}
}

func TestDashboard_readOnlyAndHeaders(t *testing.T) {
	s := startStack(t, nil)
	for _, path := range []string{"/", "/api/status", "/metrics", "/objects", "/events/stream", "/static/app.js", "/hooks/git/shop", "/nope"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, "PROPFIND"} {
			req, _ := http.NewRequestWithContext(t.Context(), m, s.url+path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q; want 405", m, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	resp, err := http.Get(s.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", h)
	}
	for path, ct := range map[string]string{"/static/app.js": "javascript", "/static/style.css": "text/css", "/api/status": "application/json"} {
		resp, err := http.Get(s.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !strings.Contains(resp.Header.Get("Content-Type"), ct) || resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if code, _ := s.get(t, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}
}

func TestDashboard_token(t *testing.T) {
	const token = "let-me-in"
	s := startStack(t, func(c *dashboard.Config) { c.Token = token })
	if code, _ := s.get(t, "/"); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := s.get(t, "/api/status", "Authorization", "Bearer wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	if code, _ := s.get(t, "/api/status", "Authorization", "Bearer "+token); code != http.StatusOK {
		t.Errorf("bearer: %d", code)
	}
	if code, _ := s.get(t, "/static/style.css"); code != http.StatusOK {
		t.Errorf("static: %d", code)
	}
	// A browser: ?token= once, then the cookie.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.url + "/pods?namespace=shop&token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || loc.Path != "/pods" || loc.Query().Get("namespace") != "shop" || loc.Query().Has("token") || len(cookies) != 1 {
		t.Fatalf("?token=: %d, Location %q, cookies %v", resp.StatusCode, loc, cookies)
	}
	if !cookies[0].HttpOnly || strings.Contains(cookies[0].Value, token) {
		t.Errorf("cookie %+v", cookies[0])
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/pods", nil)
	req.AddCookie(cookies[0])
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with cookie: %d", resp.StatusCode)
	}
	// A redirect never leaves the site.
	resp, err = client.Get(s.url + "//evil.example/?token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if l := resp.Header.Get("Location"); strings.HasPrefix(l, "//") {
		t.Errorf("redirect to %q", l)
	}
}

func TestDashboard_metrics(t *testing.T) {
	s := startStack(t, func(c *dashboard.Config) { c.Gatherer = gatherer(t) })
	plantFixture(t, s)
	waitOverview(t, s)
	scrape := func() map[string]float64 {
		t.Helper()
		code, body := s.get(t, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("/metrics does not parse: %v\n%s", err, body)
		}
		out := map[string]float64{}
		for name, f := range families {
			for _, m := range f.Metric {
				key := name
				for _, l := range m.Label {
					key += "," + l.GetName() + "=" + l.GetValue()
				}
				switch {
				case m.Counter != nil:
					out[key] = m.Counter.GetValue()
				case m.Gauge != nil:
					out[key] = m.Gauge.GetValue()
				case m.Histogram != nil:
					out[key+",count"] = float64(m.Histogram.GetSampleCount())
				}
			}
		}
		return out
	}
	m := scrape()
	for key, want := range map[string]float64{
		"kiln_sync_total,result=success,source=shop":   1,
		"kiln_sync_total,result=failure,source=shop":   1,
		"kiln_sync_duration_seconds,source=shop,count": 2,
		"kiln_reconcile_queue_depth":                   0,
		"kiln_test_other_total":                        3,
		"kiln_pod_scheduling_seconds,count":            3,
		"kiln_pod_start_seconds,count":                 0,
	} {
		if m[key] != want {
			t.Errorf("%s = %v, want %v", key, m[key], want)
		}
	}

	// A new sync: counted once, however often the status is written.
	setSourceStatus(t, s, fixtureSource, func(st *reconcile.SourceStatus) {
		st.LastAttemptedRevision = "main@sha1:1111111111111111111111111111111111111111"
		st.History = append([]reconcile.SyncRecord{{Revision: st.LastAttemptedRevision, Start: metav1.Now(), DurationMS: 50, Error: "apply: boom"}}, st.History...)
	})
	setSourceStatus(t, s, fixtureSource, func(st *reconcile.SourceStatus) { st.ObservedGeneration++ })
	eventually(t, "new sync counted", func() string {
		m = scrape()
		if m["kiln_sync_total,result=failure,source=shop"] != 2 || m["kiln_reconcile_queue_depth"] != 1 {
			return "not yet"
		}
		return ""
	})
	if m["kiln_sync_total,result=success,source=shop"] != 1 || m["kiln_sync_duration_seconds,source=shop,count"] != 3 {
		t.Errorf("after one new record: %v", m)
	}

	// A pod becoming ready is observed once.
	p, err := s.kube.CoreV1().Pods(fixtureNS).Get(t.Context(), "cache-66b-q1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			p.Status.Conditions[i].Status = corev1.ConditionTrue
		}
	}
	p.Status.ContainerStatuses[0].Ready = true
	if _, err := s.kube.CoreV1().Pods(fixtureNS).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod start observed", func() string {
		if scrape()["kiln_pod_start_seconds,count"] != 1 {
			return "not yet"
		}
		return ""
	})
}

func TestDashboard_liveStream(t *testing.T) {
	s := startStack(t, func(c *dashboard.Config) { c.Throttle = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/events/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	type push struct {
		v  string
		at time.Time
	}
	events := make(chan push, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- push{v, time.Now()}
			}
		}
	}()
	first := (<-events).v
	// A burst of 80 changes (40 ConfigMaps, 40 Events) is a few pushes,
	// at least the throttle apart, not 80.
	for i := range 40 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("burst-%02d", i), Namespace: "default"}}
		if _, err := s.kube.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.kube.CoreV1().Events("default").Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "burst-", Namespace: "default"},
			InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: "default", Name: cm.Name}, Reason: "Burst", Message: "m"}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Collect pushes until quiet for a second.
	var got []push
	for quiet := false; !quiet; {
		select {
		case p, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			got = append(got, p)
		case <-time.After(time.Second):
			quiet = true
		}
	}
	if len(got) == 0 || len(got) > 20 {
		t.Fatalf("%d pushes for 80 changes", len(got))
	}
	for i := 1; i < len(got); i++ {
		// The client sees the pushes a little later than they were sent.
		if gap := got[i].at.Sub(got[i-1].at); gap < 100*time.Millisecond {
			t.Errorf("pushes %d and %d only %v apart, throttle 200ms", i-1, i, gap)
		}
	}
	last := got[len(got)-1].v
	if last == first {
		t.Errorf("version did not move: %v", got)
	}
}

// roundTrip is an http.RoundTripper made of a func.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestDashboard_crashLogs reads a crash-looping container's last lines
// through the API server's pods/log proxy. The kubelet is another
// engineer's work: the API's kubelet client answers for it here.
func TestDashboard_crashLogs(t *testing.T) {
	kubelet := &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		q := r.URL.Query()
		body := "wrong request " + r.URL.String()
		if r.URL.Host == "10.0.0.11:10250" && r.URL.Path == "/containerLogs/shop/api-5f6-k8/main" && q.Get("previous") == "true" && q.Get("tailLines") == "20" {
			body = "listening on :8080\n<script>alert(4)</script>\npanic: runtime error: index out of range [3] with length 3\n"
		}
		return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"text/plain"}},
			Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
	})}
	env := testenv.Start(t, testenv.Options{KubeletClient: kubelet})
	s := startDashboard(t, env, nil)
	plantFixture(t, s)
	body := waitOverview(t, s)
	pageContains(t, "overview", body, "last 3 log lines of the previous run", "panic: runtime error: index out of range [3] with length 3",
		"&lt;script&gt;alert(4)&lt;/script&gt;")
	if strings.Contains(body, "wrong request") {
		t.Errorf("the log request was not what the dashboard should ask for:\n%s", body)
	}
}
