package kubelet

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
)

// portForwardProtocol is the SPDY subprotocol of kubectl port-forward: per
// forwarded connection the client opens an error stream and a data
// stream, both naming the port and a request ID.
const portForwardProtocol = "portforward.k8s.io"

// portForwardPairTimeout bounds the wait for the second stream of a
// pair, as the kubelet's stream creation timeout does.
const portForwardPairTimeout = 30 * time.Second

// handlePortForward serves /portForward/<ns>/<pod>: an SPDY connection
// whose stream pairs are each connected to a port of the pod's network
// namespace. kubectl first tries a WebSocket tunnel and, refused, falls
// back to SPDY.
func (k *Kubelet) handlePortForward(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("pod")
	if !httpstream.IsUpgradeRequest(r) || r.Header.Get("Upgrade") == "websocket" {
		http.Error(w, "port forwarding is served over SPDY ("+portForwardProtocol+")", http.StatusBadRequest)
		return
	}
	_, pr, ok := k.servedPod(w, r)
	if !ok {
		return
	}
	if pr.sandbox == nil {
		http.Error(w, fmt.Sprintf("pod %s/%s has no running sandbox", ns, name), http.StatusBadRequest)
		return
	}
	if _, err := httpstream.Handshake(r, w, []string{portForwardProtocol}); err != nil {
		return // Handshake answered
	}
	streams := make(chan httpstream.Stream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(s httpstream.Stream, _ <-chan struct{}) error {
		streams <- s
		return nil
	})
	if conn == nil {
		return // UpgradeResponse answered
	}
	defer conn.Close()
	// The request's context ends with the handler; forwarded connections
	// end with the SPDY connection.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	f := &forwarder{k: k, ctx: ctx, conn: conn, sandbox: pr.sandbox.ID, pod: ns + "/" + name, pairs: map[string]*streamPair{}}
	for {
		select {
		case <-conn.CloseChan():
			f.wg.Wait()
			return
		case s := <-streams:
			f.add(s)
		}
	}
}

// forwarder pairs one SPDY connection's streams and forwards each pair.
type forwarder struct {
	k       *Kubelet
	ctx     context.Context
	conn    httpstream.Connection
	sandbox string
	pod     string
	wg      sync.WaitGroup

	mu    sync.Mutex
	pairs map[string]*streamPair
}

type streamPair struct {
	data, errs httpstream.Stream
	timer      *time.Timer
}

// add takes one stream; the second of a request ID starts the forward.
func (f *forwarder) add(s httpstream.Stream) {
	id := s.Headers().Get(corev1.PortForwardRequestIDHeader)
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pairs[id]
	if p == nil {
		p = &streamPair{}
		f.pairs[id] = p
		p.timer = time.AfterFunc(portForwardPairTimeout, func() { f.expire(id) })
	}
	switch s.Headers().Get(corev1.StreamType) {
	case corev1.StreamTypeData:
		p.data = s
	case corev1.StreamTypeError:
		p.errs = s
	default:
		_ = s.Reset()
		return
	}
	if p.data == nil || p.errs == nil {
		return
	}
	p.timer.Stop()
	delete(f.pairs, id)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.forward(p)
	}()
}

// expire drops a pair whose second stream never came.
func (f *forwarder) expire(id string) {
	f.mu.Lock()
	p := f.pairs[id]
	delete(f.pairs, id)
	f.mu.Unlock()
	if p == nil {
		return
	}
	for _, s := range []httpstream.Stream{p.data, p.errs} {
		if s != nil {
			_ = s.Reset()
			f.conn.RemoveStreams(s)
		}
	}
}

// forward connects a pair's data stream to its port; a failure is written
// on the error stream, which kubectl prints.
func (f *forwarder) forward(p *streamPair) {
	defer f.conn.RemoveStreams(p.data, p.errs)
	defer p.errs.Close()
	port, err := strconv.ParseUint(p.data.Headers().Get(corev1.PortHeader), 10, 16)
	if err != nil || port == 0 {
		_, _ = fmt.Fprintf(p.errs, "invalid port %q", p.data.Headers().Get(corev1.PortHeader))
		_ = p.data.Reset()
		return
	}
	if err := f.k.rt.PortForward(f.ctx, f.sandbox, int32(port), p.data); err != nil {
		f.k.log.Debug("port forward", logKeyPod, f.pod, "port", port, logKeyError, err)
		_, _ = fmt.Fprintf(p.errs, "error forwarding port %d to pod %s: %v", port, f.pod, err)
		_ = p.data.Reset()
	}
}
