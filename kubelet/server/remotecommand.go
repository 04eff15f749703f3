package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// streamOptions are the query of /exec and /attach.
type streamOptions struct {
	command                    []string
	stdin, stdout, stderr, tty bool
}

func parseStreamOptions(r *http.Request) (streamOptions, error) {
	q := r.URL.Query()
	o := streamOptions{
		command: q["command"],
		stdin:   q.Get(corev1.ExecStdinParam) == "1",
		stdout:  q.Get(corev1.ExecStdoutParam) == "1",
		stderr:  q.Get(corev1.ExecStderrParam) == "1",
		tty:     q.Get(corev1.ExecTTYParam) == "1",
	}
	if o.tty && o.stderr {
		// A terminal merges stderr into stdout.
		o.stderr = false
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	s.serveRemoteCommand(w, r, func(id string, opts streamOptions) (string, error) {
		resp, err := s.cfg.Runtime.Exec(r.Context(), &runtimeapi.ExecRequest{ContainerId: id, Cmd: opts.command,
			Tty: opts.tty, Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr})
		return resp.GetUrl(), err
	})
}

func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	s.serveRemoteCommand(w, r, func(id string, opts streamOptions) (string, error) {
		resp, err := s.cfg.Runtime.Attach(r.Context(), &runtimeapi.AttachRequest{ContainerId: id,
			Tty: opts.tty, Stdin: opts.stdin, Stdout: opts.stdout, Stderr: opts.stderr})
		return resp.GetUrl(), err
	})
}

// serveRemoteCommand finds the running container the request names, asks the runtime for a
// stream URL with start, and bridges the caller to it.
func (s *Server) serveRemoteCommand(w http.ResponseWriter, r *http.Request, start func(id string, opts streamOptions) (string, error)) {
	opts, err := parseStreamOptions(r)
	if err != nil {
		plainError(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, err := s.runningContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		writeError(w, err)
		return
	}
	url, err := start(id, opts)
	if err != nil {
		writeError(w, err)
		return
	}
	s.bridgeRemoteCommand(w, r, opts, url)
}

// serveRun runs a command and answers with its output, as upstream's /run.
func (s *Server) serveRun(w http.ResponseWriter, r *http.Request) {
	id, err := s.runningContainer(r.Context(), r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container"))
	if err != nil {
		writeError(w, err)
		return
	}
	// One cmd is split on spaces, as upstream does.
	cmd := r.URL.Query()["cmd"]
	if len(cmd) == 1 {
		cmd = strings.Fields(cmd[0])
	}
	resp, err := s.cfg.Runtime.ExecSync(r.Context(), &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd})
	if err != nil {
		writeError(w, err)
		return
	}
	_, _ = w.Write(append(resp.Stdout, resp.Stderr...))
}

// callerStreams are the caller's side of an exec or attach, whatever the protocol.
type callerStreams struct {
	stdin          io.Reader // nil when not asked for
	stdout, stderr io.Writer // nil when not asked for
	resize         remotecommand.TerminalSizeQueue
	// done is closed when the caller's connection ends.
	done <-chan struct{}
	// finish ends the streams and reports the outcome (nil, or the command's error).
	finish func(error)
}

// bridgeRemoteCommand accepts the caller's streams and joins them to the runtime's stream
// server at runtimeURL.
func (s *Server) bridgeRemoteCommand(w http.ResponseWriter, r *http.Request, opts streamOptions, runtimeURL string) {
	u, err := url.Parse(runtimeURL)
	if err != nil {
		writeError(w, err)
		return
	}
	var cs *callerStreams
	if wsstream.IsWebSocketRequest(r) {
		cs, err = acceptWebSocketStreams(w, r, opts)
	} else {
		cs, err = acceptSPDYStreams(w, r, opts)
	}
	if err != nil {
		s.log.Debug("accepting streams", "path", r.URL.Path, "err", err)
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	go func() {
		select {
		case <-cs.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	executor, err := remotecommand.NewSPDYExecutor(&rest.Config{}, http.MethodPost, u)
	if err != nil {
		cs.finish(err)
		return
	}
	cs.finish(executor.StreamWithContext(ctx, remotecommand.StreamOptions{
		Stdin: cs.stdin, Stdout: cs.stdout, Stderr: cs.stderr, Tty: opts.tty, TerminalSizeQueue: cs.resize}))
}

// statusOf is what the error stream carries for the command's outcome, as upstream's kubelet
// writes it: success, the exit code of a command that failed, or an internal error.
func statusOf(err error) metav1.Status {
	if err == nil {
		return metav1.Status{Status: metav1.StatusSuccess}
	}
	var exit utilexec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		return metav1.Status{
			Status:  metav1.StatusFailure,
			Reason:  remotecommandconsts.NonZeroExitCodeReason,
			Message: fmt.Sprintf("command terminated with non-zero exit code: %v", err),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type: remotecommandconsts.ExitCodeCauseType, Message: strconv.Itoa(exit.ExitStatus())}}},
		}
	}
	return metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonInternalError, Code: http.StatusInternalServerError,
		Message: fmt.Sprintf("Internal error occurred: error executing command in container: %v", err),
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Message: err.Error()}}}}
}

// errorStreamBody is the error stream's content: a JSON Status from v4 on, the bare message before.
func errorStreamBody(protocol string, err error) []byte {
	switch protocol {
	case remotecommandconsts.StreamProtocolV5Name, remotecommandconsts.StreamProtocolV4Name:
		b, _ := json.Marshal(statusOf(err))
		return b
	}
	if err == nil {
		return nil
	}
	return []byte(err.Error())
}

// sizeQueue reads the caller's terminal sizes, JSON objects one after another.
type sizeQueue struct{ dec *json.Decoder }

func (q sizeQueue) Next() *remotecommand.TerminalSize {
	var size remotecommand.TerminalSize
	if err := q.dec.Decode(&size); err != nil {
		return nil
	}
	return &size
}

// WebSocket channels of the remotecommand protocols.
const (
	chanStdin  = remotecommandconsts.StreamStdIn
	chanStdout = remotecommandconsts.StreamStdOut
	chanStderr = remotecommandconsts.StreamStdErr
	chanError  = remotecommandconsts.StreamErr
	chanResize = remotecommandconsts.StreamResize
	chanClose  = remotecommandconsts.StreamClose
)

var remoteCommandWebSocketProtocols = []string{
	remotecommandconsts.StreamProtocolV5Name, remotecommandconsts.StreamProtocolV4Name,
	remotecommandconsts.StreamProtocolV3Name, remotecommandconsts.StreamProtocolV2Name,
	remotecommandconsts.StreamProtocolV1Name,
}

var upgrader = gwebsocket.Upgrader{
	// Callers are authenticated by their certificate, not by origin.
	CheckOrigin: func(*http.Request) bool { return true },
}

// wsConn multiplexes channels over a WebSocket: each binary message starts with its channel
// number; under v5, a message [255, n] closes the caller's side of channel n.
type wsConn struct {
	ws       *gwebsocket.Conn
	protocol string

	writeMu sync.Mutex // guards writes to ws

	// inputs are the channels the caller writes, by number.
	inputs map[byte]*io.PipeWriter
	done   chan struct{} // closed when the read loop ends
}

func acceptWebSocket(w http.ResponseWriter, r *http.Request, protocols []string, inputs ...byte) (*wsConn, map[byte]*io.PipeReader, error) {
	u := upgrader
	u.Subprotocols = protocols
	ws, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, nil, err // the upgrader answered the caller
	}
	c := &wsConn{ws: ws, protocol: ws.Subprotocol(), inputs: map[byte]*io.PipeWriter{}, done: make(chan struct{})}
	readers := map[byte]*io.PipeReader{}
	for _, n := range inputs {
		pr, pw := io.Pipe()
		c.inputs[n], readers[n] = pw, pr
	}
	go c.readLoop()
	return c, readers, nil
}

func (c *wsConn) readLoop() {
	defer close(c.done)
	defer func() {
		for _, pw := range c.inputs {
			_ = pw.Close()
		}
	}()
	for {
		kind, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if kind != gwebsocket.BinaryMessage || len(data) == 0 {
			continue
		}
		if data[0] == chanClose && c.protocol == remotecommandconsts.StreamProtocolV5Name {
			if len(data) == 2 {
				if pw := c.inputs[data[1]]; pw != nil {
					_ = pw.Close()
				}
			}
			continue
		}
		if pw := c.inputs[data[0]]; pw != nil {
			// A write after the consumer stopped reading fails; the data has nowhere to go.
			_, _ = pw.Write(data[1:])
		}
	}
}

// channel is a writer onto one channel.
func (c *wsConn) channel(n byte) io.Writer { return wsWriter{c, n} }

type wsWriter struct {
	c *wsConn
	n byte
}

func (w wsWriter) Write(p []byte) (int, error) {
	w.c.writeMu.Lock()
	defer w.c.writeMu.Unlock()
	if err := w.c.ws.WriteMessage(gwebsocket.BinaryMessage, append([]byte{w.n}, p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// close says goodbye and ends the connection.
func (c *wsConn) close() {
	c.writeMu.Lock()
	_ = c.ws.WriteControl(gwebsocket.CloseMessage, gwebsocket.FormatCloseMessage(gwebsocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.writeMu.Unlock()
	_ = c.ws.Close()
	for _, pw := range c.inputs {
		_ = pw.CloseWithError(io.ErrClosedPipe)
	}
}

func acceptWebSocketStreams(w http.ResponseWriter, r *http.Request, opts streamOptions) (*callerStreams, error) {
	c, readers, err := acceptWebSocket(w, r, remoteCommandWebSocketProtocols, chanStdin, chanResize)
	if err != nil {
		return nil, err
	}
	cs := &callerStreams{done: c.done}
	if opts.stdin {
		cs.stdin = readers[chanStdin]
	}
	if opts.stdout {
		cs.stdout = c.channel(chanStdout)
	}
	if opts.stderr {
		cs.stderr = c.channel(chanStderr)
	}
	if opts.tty {
		cs.resize = sizeQueue{json.NewDecoder(readers[chanResize])}
	}
	cs.finish = func(err error) {
		if body := errorStreamBody(c.protocol, err); len(body) > 0 {
			_, _ = c.channel(chanError).Write(body)
		}
		c.close()
	}
	return cs, nil
}

var remoteCommandSPDYProtocols = []string{
	remotecommandconsts.StreamProtocolV4Name, remotecommandconsts.StreamProtocolV3Name,
	remotecommandconsts.StreamProtocolV2Name, remotecommandconsts.StreamProtocolV1Name,
}

// acceptSPDYStreams upgrades to SPDY and waits for the streams the options call for.
func acceptSPDYStreams(w http.ResponseWriter, r *http.Request, opts streamOptions) (*callerStreams, error) {
	protocol, err := httpstream.Handshake(r, w, remoteCommandSPDYProtocols)
	if err != nil {
		plainError(w, err.Error(), http.StatusForbidden)
		return nil, err
	}
	if protocol == "" {
		protocol = remotecommandconsts.StreamProtocolV1Name
	}
	streams := make(chan httpstream.Stream, 8)
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(st httpstream.Stream, _ <-chan struct{}) error {
		select {
		case streams <- st:
			return nil
		default:
			return errors.New("unexpected stream") // more streams than the protocol has
		}
	})
	if conn == nil {
		return nil, errors.New("SPDY upgrade failed")
	}
	want := map[string]bool{corev1.StreamTypeError: true}
	if opts.stdin {
		want[corev1.StreamTypeStdin] = true
	}
	if opts.stdout {
		want[corev1.StreamTypeStdout] = true
	}
	if opts.stderr {
		want[corev1.StreamTypeStderr] = true
	}
	if opts.tty && protocol != remotecommandconsts.StreamProtocolV1Name && protocol != remotecommandconsts.StreamProtocolV2Name {
		want[corev1.StreamTypeResize] = true
	}
	got := map[string]httpstream.Stream{}
	timeout := time.NewTimer(remotecommandconsts.DefaultStreamCreationTimeout)
	defer timeout.Stop()
	for len(got) < len(want) {
		select {
		case st := <-streams:
			kind := st.Headers().Get(corev1.StreamType)
			if !want[kind] {
				_ = st.Reset()
				continue
			}
			got[kind] = st
		case <-timeout.C:
			_ = conn.Close()
			return nil, fmt.Errorf("timed out waiting for the client's streams (%d of %d)", len(got), len(want))
		case <-conn.CloseChan():
			return nil, errors.New("the client closed the connection before its streams were created")
		}
	}
	done := make(chan struct{})
	go func() {
		<-conn.CloseChan()
		close(done)
	}()
	cs := &callerStreams{done: done}
	if st := got[corev1.StreamTypeStdin]; st != nil {
		cs.stdin = st
	}
	if st := got[corev1.StreamTypeStdout]; st != nil {
		cs.stdout = st
	}
	if st := got[corev1.StreamTypeStderr]; st != nil {
		cs.stderr = st
	}
	if st := got[corev1.StreamTypeResize]; st != nil {
		cs.resize = sizeQueue{json.NewDecoder(st)}
	}
	cs.finish = func(err error) {
		for _, kind := range []string{corev1.StreamTypeStdout, corev1.StreamTypeStderr} {
			if st := got[kind]; st != nil {
				_ = st.Close()
			}
		}
		errStream := got[corev1.StreamTypeError]
		if body := errorStreamBody(protocol, err); len(body) > 0 {
			_, _ = errStream.Write(body)
		}
		_ = errStream.Close()
		_ = conn.Close()
	}
	return cs, nil
}
