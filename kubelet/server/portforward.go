package server

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	spdytransport "k8s.io/client-go/transport/spdy"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// tunnelingProtocol is the WebSocket subprotocol under which a caller speaks SPDY port-forward
// inside WebSocket binary messages (kubectl's first try).
const tunnelingProtocol = "SPDY/3.1+" + portforward.PortForwardProtocolV1Name

// servePortForward joins the caller's port-forward connection to the runtime's: each pair of
// streams the caller opens (error and data, one requestID, a port header) is forwarded as a pair
// on a connection to the runtime's stream server.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	sb, err := s.sandbox(r.Context(), r.PathValue("namespace"), r.PathValue("pod"))
	if err != nil {
		writeError(w, err)
		return
	}
	resp, err := s.cfg.Runtime.PortForward(r.Context(), &runtimeapi.PortForwardRequest{PodSandboxId: sb})
	if err != nil {
		writeError(w, err)
		return
	}
	u, err := url.Parse(resp.Url)
	if err != nil {
		writeError(w, err)
		return
	}
	rt, up, err := spdytransport.RoundTripperFor(&rest.Config{})
	if err != nil {
		writeError(w, err)
		return
	}
	remote, _, err := spdytransport.NewDialerForStreaming(up, &http.Client{Transport: rt}, http.MethodPost, u).Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		writeError(w, err)
		return
	}
	defer remote.Close()

	streams := make(chan httpstream.Stream)
	done := make(chan struct{}) // closed when this handler stops taking streams
	defer close(done)
	accept := func(st httpstream.Stream, _ <-chan struct{}) error {
		select {
		case streams <- st:
			return nil
		case <-done:
			return errors.New("port-forward ended")
		}
	}
	var conn httpstream.Connection
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		u := upgrader
		u.Subprotocols = []string{tunnelingProtocol}
		ws, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		conn, err = spdy.NewServerConnection(portforward.NewTunnelingConnection("kubelet-portforward", ws), accept)
		if err != nil {
			_ = ws.Close()
			return
		}
	} else {
		if _, err := httpstream.Handshake(r, w, []string{portforward.PortForwardProtocolV1Name}); err != nil {
			plainError(w, err.Error(), http.StatusForbidden)
			return
		}
		if conn = spdy.NewResponseUpgrader().UpgradeResponse(w, r, accept); conn == nil {
			return
		}
	}
	defer conn.Close()

	type pair struct{ data, errs httpstream.Stream }
	pairs := map[string]*pair{}
	var wg sync.WaitGroup
	defer func() {
		// Closing both connections resets their streams, which ends the forwards.
		_ = remote.Close()
		_ = conn.Close()
		wg.Wait()
	}()
	for {
		select {
		case <-conn.CloseChan():
			return
		case <-remote.CloseChan():
			return
		case st := <-streams:
			id := st.Headers().Get(corev1.PortForwardRequestIDHeader)
			p := pairs[id]
			if p == nil {
				p = &pair{}
				pairs[id] = p
			}
			switch st.Headers().Get(corev1.StreamType) {
			case corev1.StreamTypeData:
				p.data = st
			case corev1.StreamTypeError:
				p.errs = st
			default:
				_ = st.Reset()
				continue
			}
			if p.data != nil && p.errs != nil {
				delete(pairs, id)
				wg.Go(func() {
					forwardPair(remote, p.data, p.errs)
					conn.RemoveStreams(p.data, p.errs)
				})
			}
		}
	}
}

// forwardPair forwards one caller connection (its data and error streams) through a pair of
// streams on the runtime's connection, until the runtime's side ends.
func forwardPair(remote httpstream.Connection, data, errs httpstream.Stream) {
	defer errs.Close()
	defer data.Close()
	h := http.Header{}
	h.Set(corev1.PortHeader, data.Headers().Get(corev1.PortHeader))
	h.Set(corev1.PortForwardRequestIDHeader, data.Headers().Get(corev1.PortForwardRequestIDHeader))
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	rErrs, err := remote.CreateStream(h)
	if err != nil {
		_, _ = errs.Write([]byte(err.Error()))
		return
	}
	_ = rErrs.Close() // nothing is sent on it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	rData, err := remote.CreateStream(h)
	if err != nil {
		_, _ = errs.Write([]byte(err.Error()))
		remote.RemoveStreams(rErrs)
		return
	}
	defer remote.RemoveStreams(rErrs, rData)
	errDone := make(chan struct{})
	go func() {
		defer close(errDone)
		_, _ = io.Copy(errs, rErrs)
	}()
	go func() {
		// The caller's end of input half-closes the runtime's stream.
		if _, err := io.Copy(rData, data); err == nil || errors.Is(err, io.EOF) {
			_ = rData.Close()
		}
	}()
	_, _ = io.Copy(data, rData)
	<-errDone
}
