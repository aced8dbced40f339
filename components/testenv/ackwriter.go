package testenv

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// AckWriter proves that no acknowledged write is lost across faults: it
// creates ConfigMaps in a loop, round-robin through its clients (one per
// server), records every one the API acknowledged with a 2xx, shrugs off
// the errors a fault causes, and Verify reads every acknowledged one back
// at the end. A write that failed or timed out may or may not have
// happened; only acknowledged ones are owed.
type AckWriter struct {
	clients   []kubernetes.Interface
	namespace string
	interval  time.Duration

	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	acked  []string
	errors int
	last   error
}

// ackWriteTimeout bounds one write, so a request stuck on a dead server
// does not stall the loop.
const ackWriteTimeout = 5 * time.Second

// ackLabel marks the AckWriter's ConfigMaps.
const ackLabel = "kiln.dev/ack-writer"

// StartAckWriter starts writing into namespace (which must exist) at about
// rate ConfigMaps a second until Stop or the end of the test.
func StartAckWriter(t testing.TB, namespace string, rate int, clients ...kubernetes.Interface) *AckWriter {
	t.Helper()
	if len(clients) == 0 || rate <= 0 {
		t.Fatal("StartAckWriter: want at least one client and a positive rate")
	}
	w := &AckWriter{clients: clients, namespace: namespace, interval: time.Second / time.Duration(rate),
		stop: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	go func() {
		defer close(w.done)
		defer cancel()
		w.run(ctx)
	}()
	t.Cleanup(w.Stop)
	return w
}

func (w *AckWriter) run(ctx context.Context) {
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		name := "ack-" + strconv.Itoa(i)
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ackLabel: "true"}},
			Data:       map[string]string{"seq": strconv.Itoa(i)},
		}
		wctx, cancel := context.WithTimeout(ctx, ackWriteTimeout)
		_, err := w.clients[i%len(w.clients)].CoreV1().ConfigMaps(w.namespace).Create(wctx, cm, metav1.CreateOptions{})
		cancel()
		w.mu.Lock()
		if err == nil {
			w.acked = append(w.acked, name)
		} else {
			w.errors++
			w.last = err
		}
		w.mu.Unlock()
	}
}

// Stop ends the writing and waits for the write in flight.
func (w *AckWriter) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Counts returns how many writes were acknowledged and how many failed so
// far, and the last failure.
func (w *AckWriter) Counts() (acked, failed int, last error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), w.errors, w.last
}

// Verify stops the writer and reads every acknowledged ConfigMap back
// through the first client that answers (retrying for up to a minute while
// the cluster settles), failing the test with the names of any that are
// missing or hold other data. Pass the clients of servers known to be up.
func (w *AckWriter) Verify(t testing.TB, clients ...kubernetes.Interface) {
	t.Helper()
	w.Stop()
	if len(clients) == 0 {
		clients = w.clients
	}
	w.mu.Lock()
	acked := slices.Clone(w.acked)
	failed := w.errors
	w.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	var live map[string]string
	var lastErr error
	for i := 0; live == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("ack writer: cannot list ConfigMaps to verify %d acknowledged writes: %v", len(acked), lastErr)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		list, err := clients[i%len(clients)].CoreV1().ConfigMaps(w.namespace).List(ctx, metav1.ListOptions{LabelSelector: ackLabel + "=true"})
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		live = make(map[string]string, len(list.Items))
		for _, cm := range list.Items {
			live[cm.Name] = cm.Data["seq"]
		}
	}
	var missing []string
	for _, name := range acked {
		if seq, ok := live[name]; !ok || "ack-"+seq != name {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("ack writer: %d of %d acknowledged ConfigMaps are missing or wrong after the faults: %v", len(missing), len(acked), missing)
		return
	}
	t.Logf("ack writer: all %d acknowledged writes read back (%d writes failed during faults)", len(acked), failed)
	if len(acked) == 0 {
		t.Error("ack writer: no write was ever acknowledged")
	}
}

// String summarizes the writer for logs.
func (w *AckWriter) String() string {
	acked, failed, _ := w.Counts()
	return fmt.Sprintf("ack writer: %d acknowledged, %d failed", acked, failed)
}
