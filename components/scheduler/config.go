package scheduler

import (
	"log/slog"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
)

// Defaults of Config and fixed tunables, as kube-scheduler has them
// unless a comment says otherwise.
const (
	// DefaultSchedulerName is the schedulerName kiln answers to, besides
	// DefaultSchedulerAlias.
	DefaultSchedulerName = "kiln-scheduler"
	// DefaultSchedulerAlias is the name the API server defaults
	// spec.schedulerName to; pods carrying it are kiln's as well, because
	// kiln runs no other scheduler.
	DefaultSchedulerAlias = "default-scheduler"
	// DefaultParallelism is how many goroutines filter and score nodes of
	// one pod (kube's parallelism).
	DefaultParallelism = 16
	// DefaultBindWorkers bounds the binds and status writes in flight.
	// kube starts one goroutine per bind; a bound keeps a burst of 10,000
	// pods from opening 10,000 requests at once.
	DefaultBindWorkers = 64

	// InitialBackoff and MaxBackoff bound the wait before a pod that
	// failed is retried: 1 s, doubling per attempt, at most 10 s.
	InitialBackoff = 1 * time.Second
	MaxBackoff     = 10 * time.Second
	// MaxUnschedulableDuration is how long a pod waits for a cluster event
	// before it is retried anyway (kube's podMaxInUnschedulablePodsDuration),
	// in case an event that would have helped was missed.
	MaxUnschedulableDuration = 5 * time.Minute

	// minFeasibleNodesToFind and minFeasibleNodesPercentageToFind shape
	// the adaptive percentage of nodes to score: below 100 nodes every node
	// is checked; above, 50% - nodes/125, but at least 5% and 100 nodes.
	minFeasibleNodesToFind           = 100
	minFeasibleNodesPercentageToFind = 5

	// writeTimeout bounds each API write. Writes are detached from Run's
	// context so that a bind in flight when Run ends is finished (or
	// known failed) before Run returns, and a successor's informer lists
	// it (see Run).
	writeTimeout = 30 * time.Second
	// eventQueueSize bounds the Scheduled events waiting to be written,
	// and scheduledEventsPerSecond and scheduledEventsBurst the rate they
	// are written at; beyond either they are dropped, as kube's event
	// broadcaster drops events when its queue is full, so that a burst of
	// 10,000 binds does not bring 10,000 event writes competing with them,
	// while a Deployment of 100 replicas still gets an event per pod.
	eventQueueSize           = 1024
	scheduledEventsPerSecond = 20
	scheduledEventsBurst     = 100
)

// Config configures the scheduler.
type Config struct {
	// Client binds pods and writes their PodScheduled condition and
	// Events. Required. Binding 1,000 pods a second needs a client whose
	// QPS and Burst allow it (kiln's server gives the scheduler its own).
	Client kubernetes.Interface
	// Informers is the shared factory the scheduler registers its Pod,
	// Node and Namespace informers on in New; the caller starts it.
	// Required.
	Informers informers.SharedInformerFactory
	// Logger receives lifecycle and per-pod messages; nil means
	// slog.Default().
	Logger *slog.Logger
	// SchedulerName is the spec.schedulerName this scheduler serves, besides
	// DefaultSchedulerAlias; empty means DefaultSchedulerName. It is also
	// the source of the Events it records.
	SchedulerName string
	// Parallelism is how many goroutines filter and score the nodes of one
	// pod; zero means DefaultParallelism.
	Parallelism int
	// PercentageOfNodesToScore stops the search once this percentage of
	// the nodes was found feasible (at least 100 nodes); zero means
	// adaptive, as kube: 50% at 0 nodes, falling by 1% per 125 nodes to 5%.
	// 100 checks every node.
	PercentageOfNodesToScore int
	// BindWorkers bounds the API writes (binds, status, events of
	// failures) in flight; zero means DefaultBindWorkers.
	BindWorkers int
	// Identity names this instance in the Events it records; empty means
	// the host name.
	Identity string
}
