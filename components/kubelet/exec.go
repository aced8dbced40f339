package kubelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"

	"kiln.dev/kiln/components/kubelet/runtime"
)

// The WebSocket subprotocols of remote command execution that kubectl
// (v1.30 and later) speaks: one byte of channel number before each
// message, a metav1.Status on the error channel at the end, and in v5 a
// close signal for stdin.
const (
	execProtocolV5 = "v5.channel.k8s.io"
	execProtocolV4 = "v4.channel.k8s.io"
)

// The channels of those protocols, in order.
const (
	execStdin = iota
	execStdout
	execStderr
	execError
	execResize
)

// execIdleTimeout closes an exec stream that carried nothing for this
// long, as the kubelet's --streaming-connection-idle-timeout does.
const execIdleTimeout = 4 * time.Hour

// execRequest is what a client asked of an exec, from the query.
type execRequest struct {
	cmd                        []string
	stdin, stdout, stderr, tty bool
}

func parseExecRequest(r *http.Request) (execRequest, error) {
	er, err := parseStreamRequest(r)
	if err == nil && len(er.cmd) == 0 {
		return er, errors.New("you must specify at least one command for the container")
	}
	return er, err
}

// parseStreamRequest reads the streams an exec or attach asks for.
func parseStreamRequest(r *http.Request) (execRequest, error) {
	q := r.URL.Query()
	flag := func(name string) bool {
		v, _ := strconv.ParseBool(q.Get(name))
		return v
	}
	er := execRequest{cmd: q["command"], stdin: flag("input") || flag("stdin"), stdout: flag("output") || flag("stdout"), stderr: flag("error") || flag("stderr"), tty: flag("tty")}
	if !er.stdin && !er.stdout && !er.stderr {
		return er, errors.New("you must specify at least one of stdin, stdout, stderr")
	}
	if er.tty && er.stderr {
		// A terminal has one output stream; kube drops stderr too.
		er.stderr = false
	}
	return er, nil
}

// handleExec serves /exec/<ns>/<pod>/<container>: the command runs in the
// container's latest running instance, with the client's streams over a
// WebSocket, as the kubelet's streaming server does for kubectl exec.
func (k *Kubelet) handleExec(w http.ResponseWriter, r *http.Request) {
	er, err := parseExecRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	k.serveStreams(w, r, "exec", er, func(id string, s clientStreams) (int, error) {
		opts := runtime.ExecOptions{Cmd: er.cmd, TTY: er.tty, Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr, Resize: s.resize}
		return k.rt.Exec(r.Context(), id, opts)
	})
}

// handleAttach serves /attach/<ns>/<pod>/<container>: the client's
// streams join the container's own stdin and output (kubectl attach,
// kubectl run -i) until it exits or the client leaves.
func (k *Kubelet) handleAttach(w http.ResponseWriter, r *http.Request) {
	er, err := parseStreamRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	k.serveStreams(w, r, "attach", er, func(id string, s clientStreams) (int, error) {
		opts := runtime.AttachOptions{Stdin: s.stdin, Stdout: s.stdout, Stderr: s.stderr, Resize: s.resize}
		return 0, k.rt.Attach(r.Context(), id, opts)
	})
}

// clientStreams are the streams a client opened; nil when not asked for.
type clientStreams struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	resize         <-chan runtime.TerminalSize
}

// serveStreams opens the WebSocket streams er asks for to the latest
// running instance of the request's container, runs run with them, and
// ends with run's status on the error channel.
func (k *Kubelet) serveStreams(w http.ResponseWriter, r *http.Request, what string, er execRequest, run func(id string, s clientStreams) (int, error)) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	if !wsstream.IsWebSocketRequest(r) {
		http.Error(w, what+" needs a WebSocket upgrade ("+execProtocolV5+" or "+execProtocolV4+"); SPDY is not supported", http.StatusBadRequest)
		return
	}
	_, pr, ok := k.servedPod(w, r)
	if !ok {
		return
	}
	target := pr.latest(container)
	if target == nil || target.State != runtime.ContainerRunning {
		http.Error(w, fmt.Sprintf("container %q in pod %q is not running", container, name), http.StatusBadRequest)
		return
	}

	channels := []wsstream.ChannelType{
		execStdin:  wsstream.IgnoreChannel,
		execStdout: wsstream.IgnoreChannel,
		execStderr: wsstream.IgnoreChannel,
		execError:  wsstream.WriteChannel,
		execResize: wsstream.ReadChannel,
	}
	if er.stdin {
		channels[execStdin] = wsstream.ReadChannel
	}
	if er.stdout {
		channels[execStdout] = wsstream.WriteChannel
	}
	if er.stderr {
		channels[execStderr] = wsstream.WriteChannel
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		execProtocolV5: {Binary: true, Channels: channels},
		execProtocolV4: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(execIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		// Open has answered the client already.
		k.log.Debug(what+" stream", logKeyPod, ns+"/"+name, logKeyError, err)
		return
	}
	defer conn.Close()

	var cs clientStreams
	if er.stdin {
		cs.stdin = streams[execStdin]
	}
	if er.stdout {
		cs.stdout = streams[execStdout]
	}
	if er.stderr {
		cs.stderr = streams[execStderr]
	}
	if er.tty {
		resize := make(chan runtime.TerminalSize, 1)
		cs.resize = resize
		go readResizes(streams[execResize], resize)
	}
	code, err := run(target.ID, cs)
	k.log.Debug(what, logKeyPod, ns+"/"+name, logKeyContainer, container, "exitCode", code, logKeyError, err)
	_ = json.NewEncoder(streams[execError]).Encode(execStatus(code, err))
}

// readResizes decodes the resize channel's JSON sizes until it closes.
func readResizes(rd io.Reader, out chan<- runtime.TerminalSize) {
	defer close(out)
	dec := json.NewDecoder(rd)
	for {
		var size struct{ Width, Height uint16 }
		if err := dec.Decode(&size); err != nil {
			return
		}
		out <- runtime.TerminalSize{Width: size.Width, Height: size.Height}
	}
}

// execStatus is the error channel's last message: Success, or the exit
// code as kubectl reads it (reason NonZeroExitCode, cause ExitCode).
func execStatus(code int, err error) metav1.Status {
	switch {
	case err != nil:
		return metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Message: err.Error()}
	case code != 0:
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  "NonZeroExitCode",
			Message: fmt.Sprintf("command terminated with non-zero exit code: exit status %d", code),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: "ExitCode", Message: strconv.Itoa(code)}}},
		}
	}
	return metav1.Status{Status: metav1.StatusSuccess}
}
