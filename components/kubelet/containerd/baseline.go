package containerd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"slices"
	"sync"
	"time"
)

// CtrRun describes the baseline that pod start-up is compared with:
// `ctr run --rm --net-host IMAGE ID ARGS...` against the same containerd,
// timed from the exec of ctr to the container's first stdout line that
// Ready accepts. The pod-startup benchmark divides its p50 by this one's.
type CtrRun struct {
	// Ctr is the ctr binary; default "ctr" from PATH.
	Ctr string
	// Address and Namespace select the containerd (Runtime.Address and
	// Runtime.Namespace).
	Address   string
	Namespace string
	// Image must be present (imported or pulled) in Namespace.
	Image string
	// Args, when set, are the whole command (ctr replaces ENTRYPOINT and
	// CMD), e.g. for the demo image {"/demo-web", "serve", "-addr",
	// "127.0.0.1:0"}, so that runs on the host network do not fight over a
	// port.
	Args []string
	// Ready reports whether a line means ready; nil accepts the first line.
	Ready func(line string) bool
}

// MeasureCtrRun runs b n times, one after another, and returns each run's
// time to ready. Each container is stopped with SIGTERM (ctr task kill) and
// removed (--rm) before the next run starts.
func MeasureCtrRun(ctx context.Context, b CtrRun, n int) ([]time.Duration, error) {
	if b.Ctr == "" {
		b.Ctr = "ctr"
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		d, err := ctrRunOnce(ctx, b, fmt.Sprintf("ctr-baseline-%s-%d", newID()[:8], i))
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// MeasureCtrRunParallel starts n runs of b at once and returns each one's
// time to ready: the baseline for n pods created together, which compete
// for the same CPUs as ctr runs do here.
func MeasureCtrRunParallel(ctx context.Context, b CtrRun, n int) ([]time.Duration, error) {
	if b.Ctr == "" {
		b.Ctr = "ctr"
	}
	out := make([]time.Duration, n)
	errs := make([]error, n)
	prefix := newID()[:8]
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i], errs[i] = ctrRunOnce(ctx, b, fmt.Sprintf("ctr-parallel-%s-%d", prefix, i)) })
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func ctrRunOnce(ctx context.Context, b CtrRun, id string) (time.Duration, error) {
	args := append([]string{"-a", b.Address, "-n", b.Namespace, "run", "--rm", "--net-host", b.Image, id}, b.Args...)
	cmd := exec.Command(b.Ctr, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start ctr: %w", err)
	}
	waitc := make(chan error, 1)
	readyc := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if !sent && (b.Ready == nil || b.Ready(sc.Text())) {
				readyc <- time.Since(start)
				sent = true
			}
		}
		waitc <- cmd.Wait()
	}()
	var took time.Duration
	select {
	case took = <-readyc:
	case err := <-waitc:
		return 0, fmt.Errorf("ctr run %s exited before ready: %v: %s", b.Image, err, bytes.TrimSpace(stderr.Bytes()))
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-waitc
		return 0, ctx.Err()
	}
	// Stop the task itself, not ctr: ctr forwards signals only once it
	// has installed its handler after the start, which may be after the
	// first line, and a ctr killed before that leaves the container behind.
	kill := exec.CommandContext(ctx, b.Ctr, "-a", b.Address, "-n", b.Namespace, "task", "kill", id)
	if out, err := kill.CombinedOutput(); err != nil {
		_ = cmd.Process.Kill()
		<-waitc
		return took, fmt.Errorf("ctr task kill %s: %v: %s", id, err, bytes.TrimSpace(out))
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-waitc:
	case <-t.C:
		_ = cmd.Process.Kill()
		<-waitc
		return took, fmt.Errorf("ctr run %s did not end after its task got SIGTERM", id)
	}
	return took, nil
}

// Percentile returns the p-th percentile (0 < p <= 100, nearest rank) of
// ds, 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(float64(len(s))*p/100)) - 1
	return s[max(0, min(i, len(s)-1))]
}
