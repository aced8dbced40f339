package kubelet

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// Kubelet is one node's agent. Create it with New and start it with Run.
type Kubelet struct {
	cfg    Config
	client kubernetes.Interface
	rt     runtime.Runtime
	log    *slog.Logger

	// crashBackoff and pullBackoff are the kubelet's two back-offs, keyed
	// per container and per pod+image.
	crashBackoff *flowcontrol.Backoff
	pullBackoff  *flowcontrol.Backoff

	podInformer  cache.SharedIndexInformer
	nodeInformer cache.SharedIndexInformer
	svcInformer  cache.SharedIndexInformer
	svcLister    corelisters.ServiceLister
	// volumeInformer follows the local-path volumes of this node.
	volumeInformer cache.SharedIndexInformer

	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	probes *prober
	auth   *authenticator
	tokens tokenCache
	stats  statsCache

	// nodeChanged is signalled by the Node informer; the node loop reads
	// spec.podCIDR then.
	nodeChanged chan struct{}

	// Set in Run before any worker starts, then read-only.
	runtimeName string // containerID scheme: "containerd" in "containerd://<id>"
	runtimeVer  string
	port        int
	// runCtx is Run's context: pod workers and probe workers end with it.
	runCtx context.Context

	mu       sync.Mutex
	started  bool
	stopping bool
	workers  map[types.UID]*podWorker
	// workerWG tracks pod worker goroutines, which the informer's
	// handlers start; they have all exited before Run returns.
	workerWG sync.WaitGroup

	// Test seams, set in New.
	now func() time.Time
}

// New validates cfg and applies defaults; it starts nothing.
func New(cfg Config) (*Kubelet, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	k := &Kubelet{
		cfg:          cfg,
		client:       cfg.Client,
		rt:           cfg.Runtime,
		log:          cfg.Logger.With(logKeyComponent, "kubelet", logKeyNode, cfg.NodeName),
		crashBackoff: flowcontrol.NewBackOff(cfg.BackoffBase, cfg.BackoffMax),
		pullBackoff:  flowcontrol.NewBackOff(cfg.BackoffBase, cfg.BackoffMax),
		nodeChanged:  make(chan struct{}, 1),
		workers:      map[types.UID]*podWorker{},
		now:          time.Now,
	}
	k.probes = newProber(k)
	k.auth = newAuthenticator(cfg.Client, cfg.NodeName, cfg.Authenticate)

	onNode := fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
	k.podInformer = coreinformers.NewFilteredPodInformer(cfg.Client, metav1.NamespaceAll, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = onNode })
	byName := fields.OneTermEqualSelector("metadata.name", cfg.NodeName).String()
	k.nodeInformer = coreinformers.NewFilteredNodeInformer(cfg.Client, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = byName })
	k.svcInformer = coreinformers.NewServiceInformer(cfg.Client, metav1.NamespaceAll, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	k.svcLister = corelisters.NewServiceLister(k.svcInformer.GetIndexer())
	k.volumeInformer = k.newVolumeInformer()
	return k, nil
}

// podDir is where a pod's files live: RootDir/pods/<uid>.
func (k *Kubelet) podDir(uid types.UID) string {
	return filepath.Join(k.cfg.RootDir, "pods", string(uid))
}

// Run registers the Node, adopts what the runtime still runs, serves
// logs and runs the pods bound to the Node until ctx is done. Containers
// keep running when it returns: a kubelet restart must not restart pods.
// It returns nil on a clean stop and ErrRunTwice when called again.
func (k *Kubelet) Run(ctx context.Context) error {
	k.mu.Lock()
	if k.started {
		k.mu.Unlock()
		return ErrRunTwice
	}
	k.started = true
	k.runCtx = ctx
	k.mu.Unlock()

	ln := k.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", k.cfg.ServerAddr); err != nil {
			return fmt.Errorf("kubelet: listen on %s: %w", k.cfg.ServerAddr, err)
		}
	}
	defer ln.Close()
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		k.port = a.Port
	}
	name, ver, err := k.rt.Version(ctx)
	if err != nil {
		return fmt.Errorf("kubelet: runtime version: %w", err)
	}
	k.runtimeName, k.runtimeVer = strings.ToLower(name), ver

	k.broadcaster = record.NewBroadcaster()
	k.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	k.recorder = k.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.cfg.NodeName})
	defer k.broadcaster.Shutdown()

	k.log.Info("starting", "runtime", name, "runtimeVersion", ver, "nodeIP", k.cfg.NodeIP, "logServer", ln.Addr().String())

	// Shutdown, in order: 1. ctx stops the informers, loops and the log
	// server; 2. no new pod workers start (stopping); 3. the running ones
	// finish their current sync and exit; 4. probe workers exit.
	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	srv := k.newServer()
	wg.Go(func() { k.serve(loopCtx, srv, ln) })

	if err := k.registerNode(loopCtx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if _, err := k.nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { signal(k.nodeChanged) },
		UpdateFunc: func(_, _ any) { signal(k.nodeChanged) },
		DeleteFunc: func(any) { signal(k.nodeChanged) },
	}); err != nil {
		return fmt.Errorf("kubelet: add node handler: %w", err)
	}
	if _, err := k.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    k.handlePod,
		UpdateFunc: func(_, cur any) { k.handlePod(cur) },
		DeleteFunc: k.handlePodDelete,
	}); err != nil {
		return fmt.Errorf("kubelet: add pod handler: %w", err)
	}
	wg.Go(func() { k.nodeInformer.Run(loopCtx.Done()) })
	wg.Go(func() { k.svcInformer.Run(loopCtx.Done()) })
	wg.Go(func() { k.nodeLoop(loopCtx) })
	wg.Go(func() { k.leaseLoop(loopCtx) })
	wg.Go(func() { k.statsLoop(loopCtx) })
	wg.Go(func() { k.volumeInformer.Run(loopCtx.Done()) })
	wg.Go(func() { k.volumeCleanupLoop(loopCtx) })

	// Services first: a container's service environment variables are
	// read once, when it starts.
	if !cache.WaitForCacheSync(loopCtx.Done(), k.svcInformer.HasSynced) {
		return k.stop()
	}
	// Orphans are removed once the pods bound here are known, and before
	// any pod worker runs, so that a worker never races the cleanup.
	podList, err := k.listBoundPods(loopCtx)
	if err != nil {
		return k.stop()
	}
	if err := k.removeOrphans(loopCtx, podList); err != nil {
		k.log.Warn("removing orphaned pods", logKeyError, err)
	}
	wg.Go(func() { k.podInformer.Run(loopCtx.Done()) })
	wg.Go(func() { k.relistLoop(loopCtx) })
	wg.Go(func() { k.housekeeping(loopCtx) })

	<-ctx.Done()
	return k.stop()
}

// stop waits for the pod workers after ctx is done. It runs while Run's
// deferred calls still hold the informers' goroutines, so it first marks
// the kubelet as stopping, which makes handlePod start no worker.
func (k *Kubelet) stop() error {
	k.mu.Lock()
	k.stopping = true
	for _, w := range k.workers {
		w.signal()
	}
	k.mu.Unlock()
	k.workerWG.Wait()
	k.probes.stopAll()
	k.log.Info("stopped")
	return nil
}

// serve runs the log server until ctx is done.
func (k *Kubelet) serve(ctx context.Context, srv *http.Server, ln net.Listener) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			k.log.Warn("log server stopped", logKeyError, err)
		}
	}()
	<-ctx.Done()
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	_ = srv.Close() // followers of logs do not end on their own
	<-done
}

// listBoundPods lists the pods bound to this node straight from the API,
// retrying until it succeeds or ctx ends (then the error is ctx's).
func (k *Kubelet) listBoundPods(ctx context.Context) ([]corev1.Pod, error) {
	onNode := fields.OneTermEqualSelector("spec.nodeName", k.cfg.NodeName).String()
	delay := 100 * time.Millisecond
	for {
		l, err := k.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: onNode})
		if err == nil {
			return l.Items, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		k.log.Warn("listing pods bound to the node", logKeyError, err)
		if err := pause(ctx, delay); err != nil {
			return nil, err
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// housekeeping forgets back-off entries that have expired.
func (k *Kubelet) housekeeping(ctx context.Context) {
	t := time.NewTicker(k.cfg.ResyncPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			k.crashBackoff.GC()
			k.pullBackoff.GC()
		}
	}
}

// signal wakes whoever waits on ch without blocking; ch has capacity 1.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
