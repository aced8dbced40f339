package dashboard

import (
	"context"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Bounds on reading crash-looping containers' logs while rendering a
// page: logs come from the kubelet through the API, which may be slow or
// absent, and the page must not wait long for them.
const (
	// logBudgetTime bounds all log reads of one page.
	logBudgetTime = 2 * time.Second
	// maxLogFetches bounds the reads one page starts; the rest say so.
	maxLogFetches = 5
	// logTTL is how long read logs are reused; a new restart is a new
	// entry anyway. Failures are retried sooner.
	logTTL      = 30 * time.Second
	logErrorTTL = 10 * time.Second
	// logMaxBytes bounds one read; logMaxLine one line as shown.
	logMaxBytes = 16 << 10
	logMaxLine  = 400
	// logMaxEntries bounds the cache; older entries go first.
	logMaxEntries = 256
)

// logCache reads and remembers the previous run's last lines of
// crash-looping containers. Concurrent pages asking for the same
// container share one read.
type logCache struct {
	client kubernetes.Interface
	lines  int64

	mu sync.Mutex
	m  map[logKey]*logEntry
}

type logKey struct {
	uid       types.UID
	container string
	restarts  int32
}

type logEntry struct {
	// done is closed when lines and err are set.
	done  chan struct{}
	lines []string
	err   string
	at    time.Time
}

// logBudget is one page's allowance of log reads.
type logBudget struct {
	c       *logCache
	ctx     context.Context
	cancel  context.CancelFunc
	fetches int
}

func (c *logCache) budget(ctx context.Context) *logBudget {
	ctx, cancel := context.WithTimeout(ctx, logBudgetTime)
	return &logBudget{c: c, ctx: ctx, cancel: cancel}
}

func (b *logBudget) done() { b.cancel() }

// get returns the last lines of container's previous run in p, or why
// there are none.
func (b *logBudget) get(p *corev1.Pod, container string, restarts int32) ([]string, string) {
	c := b.c
	key := logKey{p.UID, container, restarts}
	c.mu.Lock()
	e := c.m[key]
	fresh := false
	if e != nil {
		select {
		case <-e.done:
			ttl := logTTL
			if e.err != "" {
				ttl = logErrorTTL
			}
			fresh = time.Since(e.at) < ttl
		default:
			fresh = true // being read by another page
		}
	}
	if !fresh {
		if b.fetches >= maxLogFetches {
			c.mu.Unlock()
			return nil, "logs not read on this page (too many crash-looping containers): open the pod"
		}
		b.fetches++
		e = &logEntry{done: make(chan struct{})}
		if c.m == nil {
			c.m = map[logKey]*logEntry{}
		}
		c.evictLocked()
		c.m[key] = e
		c.mu.Unlock()
		e.lines, e.err = c.read(b.ctx, p, container)
		e.at = time.Now()
		close(e.done)
		return e.lines, e.err
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.lines, e.err
	case <-b.ctx.Done():
		return nil, "logs are still being read: reload in a moment"
	}
}

// evictLocked drops the oldest read entries once the cache is full.
func (c *logCache) evictLocked() {
	if len(c.m) < logMaxEntries {
		return
	}
	var oldest logKey
	var at time.Time
	for k, e := range c.m {
		select {
		case <-e.done:
		default:
			continue
		}
		if at.IsZero() || e.at.Before(at) {
			oldest, at = k, e.at
		}
	}
	if !at.IsZero() {
		delete(c.m, oldest)
	}
}

// read asks the API (which asks the pod's kubelet) for the previous
// run's last lines.
func (c *logCache) read(ctx context.Context, p *corev1.Pod, container string) ([]string, string) {
	tail, limit := c.lines, int64(logMaxBytes)
	raw, err := c.client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{
		Container: container, Previous: true, TailLines: &tail, LimitBytes: &limit,
	}).DoRaw(ctx)
	if err != nil {
		if apierrors.IsServiceUnavailable(err) {
			return nil, "logs unavailable: no kubelet serves this pod's logs (" + err.Error() + ")"
		}
		return nil, "logs unavailable: " + err.Error()
	}
	text := strings.TrimRight(string(raw), "\n")
	if text == "" {
		return nil, "the previous run wrote no logs"
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if len(l) > logMaxLine {
			lines[i] = strings.ToValidUTF8(l[:logMaxLine], "") + "…"
		}
	}
	return lines, ""
}
