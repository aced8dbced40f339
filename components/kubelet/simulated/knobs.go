package simulated

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Pod annotations that steer simulated containers. Each applies to every
// container of the pod, or to one when the key ends in "." and its name
// ("sim.kiln.dev/exit-code.init"); the narrower key wins. Values that do
// not parse make CreateContainer fail with a message naming the key.
const (
	// AnnotationExitCode makes containers exit with this code (an
	// integer) after AnnotationRunDuration, or at once without one.
	AnnotationExitCode = "sim.kiln.dev/exit-code"
	// AnnotationRunDuration makes containers exit after running this long
	// (a Go duration, "2s"), with AnnotationExitCode or 0. Without this
	// and AnnotationExitCode containers run until stopped.
	AnnotationRunDuration = "sim.kiln.dev/run-duration"
	// AnnotationExitReason replaces the reason of a non-zero exit
	// ("OOMKilled"); the default is "Error" ("Completed" for 0).
	AnnotationExitReason = "sim.kiln.dev/exit-reason"
	// AnnotationStartDelay makes StartContainer take this long.
	AnnotationStartDelay = "sim.kiln.dev/start-delay"
	// AnnotationStopDelay is how long containers take to exit after
	// SIGTERM; when StopContainer's timeout is shorter they are SIGKILLed
	// at the timeout and exit 137. The default is at once, exit 0.
	AnnotationStopDelay = "sim.kiln.dev/stop-delay"
	// AnnotationPullError names image references (comma-separated) whose
	// pull fails with "not found". PullImage is not told which pod pulls,
	// so a ref named by any sandbox the runtime holds fails for all.
	AnnotationPullError = "sim.kiln.dev/pull-error"
	// AnnotationExecExitCode is the exit code of every ExecSync (exec
	// probes, preStop hooks); default 0. SetExecExitCode overrides it.
	AnnotationExecExitCode = "sim.kiln.dev/exec-exit-code"
	// AnnotationLog is text a container writes to stdout when it starts,
	// one CRI log line per line of the value.
	AnnotationLog = "sim.kiln.dev/log"
	// AnnotationLogInterval makes running containers write a line
	// ("tick N") to stdout at this interval.
	AnnotationLogInterval = "sim.kiln.dev/log-interval"
)

// knobs is what the annotations ask of one container.
type knobs struct {
	exits        bool
	exitCode     int32
	exitReason   string
	runDuration  time.Duration
	startDelay   time.Duration
	stopDelay    time.Duration
	execExitCode int
	log          []string
	logInterval  time.Duration
}

// knobsFor reads the knobs of container from its pod's annotations.
func knobsFor(ann map[string]string, container string) (knobs, error) {
	var k knobs
	var err error
	if v, ok := lookup(ann, AnnotationExitCode, container); ok {
		n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
		if perr != nil {
			return k, fmt.Errorf("annotation %s: %q is not an integer", AnnotationExitCode, v)
		}
		k.exits, k.exitCode = true, int32(n)
	}
	if k.runDuration, err = duration(ann, AnnotationRunDuration, container); err != nil {
		return k, err
	}
	if _, ok := lookup(ann, AnnotationRunDuration, container); ok {
		k.exits = true
	}
	if k.startDelay, err = duration(ann, AnnotationStartDelay, container); err != nil {
		return k, err
	}
	if k.stopDelay, err = duration(ann, AnnotationStopDelay, container); err != nil {
		return k, err
	}
	if k.logInterval, err = duration(ann, AnnotationLogInterval, container); err != nil {
		return k, err
	}
	if v, ok := lookup(ann, AnnotationExecExitCode, container); ok {
		n, perr := strconv.Atoi(strings.TrimSpace(v))
		if perr != nil {
			return k, fmt.Errorf("annotation %s: %q is not an integer", AnnotationExecExitCode, v)
		}
		k.execExitCode = n
	}
	k.exitReason, _ = lookup(ann, AnnotationExitReason, container)
	if v, ok := lookup(ann, AnnotationLog, container); ok {
		k.log = strings.Split(strings.TrimSuffix(v, "\n"), "\n")
	}
	return k, nil
}

func lookup(ann map[string]string, key, container string) (string, bool) {
	if v, ok := ann[key+"."+container]; ok {
		return v, true
	}
	v, ok := ann[key]
	return v, ok
}

func duration(ann map[string]string, key, container string) (time.Duration, error) {
	v, ok := lookup(ann, key, container)
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("annotation %s: %q is not a duration", key, v)
	}
	return d, nil
}

// pullErrors lists the refs a sandbox's annotations make fail to pull.
func pullErrors(ann map[string]string) []string {
	var refs []string
	for _, r := range strings.Split(ann[AnnotationPullError], ",") {
		if r = strings.TrimSpace(r); r != "" {
			refs = append(refs, normalize(r))
		}
	}
	return refs
}

// normalize spells an image reference as containerd does:
// "busybox" is "docker.io/library/busybox:latest".
func normalize(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	first, _, hasSlash := strings.Cut(name, "/")
	switch {
	case !hasSlash:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	if i := strings.LastIndex(name, ":"); i < 0 || strings.Contains(name[i:], "/") {
		name += ":latest"
	}
	return name
}
