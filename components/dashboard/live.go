package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timing of the live-update streams.
const (
	// streamHeartbeat keeps idle connections (and proxies) open.
	streamHeartbeat = 15 * time.Second
	// streamWriteTimeout bounds one write to a client that stopped
	// reading; the listener's own write timeout would end every stream.
	streamWriteTimeout = 10 * time.Second
	// streamRetryMS is how long a browser waits before reconnecting.
	streamRetryMS = 1000
)

// hub tells the open live-update streams that the cluster changed. Every
// informer event bumps version; run pushes the version to every stream
// at most once per throttle, so a burst of events is one push.
type hub struct {
	throttle time.Duration
	max      int
	version  atomic.Uint64
	// kick is signalled on a change; buffered so changed never blocks.
	kick chan struct{}
	// stopped is closed when run returns, ending the streams.
	stopped chan struct{}

	mu   sync.Mutex
	subs map[chan uint64]struct{}
}

func newHub(throttle time.Duration, max int) *hub {
	return &hub{throttle: throttle, max: max, kick: make(chan struct{}, 1), stopped: make(chan struct{}),
		subs: map[chan uint64]struct{}{}}
}

// changed records a change. It is called from informer handlers and
// never blocks.
func (h *hub) changed() {
	h.version.Add(1)
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run pushes versions until ctx is done, then ends the streams.
func (h *hub) run(ctx context.Context) {
	defer close(h.stopped)
	var last time.Time
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		}
		if wait := h.throttle - time.Since(last); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		last = time.Now()
		v := h.version.Load()
		h.mu.Lock()
		for ch := range h.subs {
			// One slot per stream: an older version not yet sent is
			// replaced. Only run sends, so the send cannot block.
			select {
			case <-ch:
			default:
			}
			ch <- v
		}
		h.mu.Unlock()
	}
}

func (h *hub) subscribe() (chan uint64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= h.max {
		return nil, false
	}
	ch := make(chan uint64, 1)
	h.subs[ch] = struct{}{}
	return ch, true
}

func (h *hub) unsubscribe(ch chan uint64) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

// handleStream serves /events/stream: Server-Sent Events whose data is
// the cluster's version. The page compares it with the version it was
// rendered at and fetches its fragment again when they differ.
func (d *Dashboard) handleStream(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		return
	}
	ch, ok := d.hub.subscribe()
	if !ok {
		http.Error(w, "too many live-update streams", http.StatusServiceUnavailable)
		return
	}
	defer d.hub.unsubscribe(ch)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The current version at once: a change between the page's render and
	// this connection is not lost.
	if !send("retry: %d\nevent: version\ndata: %d\n\n", streamRetryMS, d.hub.version.Load()) {
		return
	}
	beat := time.NewTicker(streamHeartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.hub.stopped:
			return
		case v := <-ch:
			if !send("event: version\ndata: %d\n\n", v) {
				return
			}
		case <-beat.C:
			if !send(": ping\n\n") {
				return
			}
		}
	}
}
