package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logLine is one line of a CRI container log file:
// "2016-10-06T00:17:09.669794202Z stdout F log content".
type logLine struct {
	time   time.Time
	stream string // stdout or stderr
	// partial lines carry a piece of a longer line; their content has no newline.
	partial bool
	// content is the line's bytes as the container wrote them, its newline included when the
	// line is full.
	content []byte
}

// parseCRILine reads one line of a CRI log file, its newline included or not.
func parseCRILine(line []byte) (logLine, error) {
	var l logLine
	ts, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return l, errors.New("log line has no timestamp")
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return l, fmt.Errorf("log line timestamp: %w", err)
	}
	l.time = t
	stream, rest, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return l, errors.New("log line has no stream")
	}
	l.stream = string(stream)
	if l.stream != string(runtimeapi.Stdout) && l.stream != string(runtimeapi.Stderr) {
		return l, fmt.Errorf("log line has unknown stream %q", l.stream)
	}
	tags, content, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		// A full empty line may end at the tag.
		tags, content = bytes.TrimSuffix(rest, []byte{'\n'}), nil
	}
	first, _, _ := strings.Cut(string(tags), runtimeapi.LogTagDelimiter)
	l.partial = runtimeapi.LogTag(first) == runtimeapi.LogTagPartial
	content = bytes.TrimSuffix(content, []byte{'\n'})
	if !l.partial {
		content = append(content[:len(content):len(content)], '\n')
	}
	l.content = content
	return l, nil
}

// logOptions are the query of /containerLogs, upstream's PodLogOptions.
type logOptions struct {
	follow, previous, timestamps bool
	tailLines                    int64 // -1: all
	limitBytes                   int64 // 0: no limit
	since                        time.Time
	stream                       string // "" (both), stdout or stderr
}

func parseLogOptions(r *http.Request, now time.Time) (logOptions, error) {
	q := r.URL.Query()
	o := logOptions{tailLines: -1}
	var err error
	boolean := func(name string) bool {
		v := q.Get(name)
		if v == "" {
			return false
		}
		b, perr := strconv.ParseBool(v)
		if perr != nil && err == nil {
			err = fmt.Errorf("invalid %s %q", name, v)
		}
		return b
	}
	o.follow, o.previous, o.timestamps = boolean("follow"), boolean("previous"), boolean("timestamps")
	integer := func(name string) (int64, bool) {
		v := q.Get(name)
		if v == "" {
			return 0, false
		}
		n, perr := strconv.ParseInt(v, 10, 64)
		if (perr != nil || n < 0) && err == nil {
			err = fmt.Errorf("invalid %s %q", name, v)
		}
		return n, true
	}
	if n, ok := integer("tailLines"); ok {
		o.tailLines = n
	}
	if n, ok := integer("limitBytes"); ok {
		o.limitBytes = n
	}
	if n, ok := integer("sinceSeconds"); ok {
		o.since = now.Add(-time.Duration(n) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, perr := time.Parse(time.RFC3339, v)
		if perr != nil && err == nil {
			err = fmt.Errorf("invalid sinceTime %q", v)
		}
		o.since = t
	}
	switch v := q.Get("stream"); v {
	case "", "All":
	case "Stdout":
		o.stream = string(runtimeapi.Stdout)
	case "Stderr":
		o.stream = string(runtimeapi.Stderr)
	default:
		if err == nil {
			err = fmt.Errorf("invalid stream %q", v)
		}
	}
	return o, err
}

// logContainerID picks the container whose log is asked for from the pod's status, with
// upstream's kubelet's messages when there is none.
func logContainerID(pod *corev1.Pod, container string, previous bool) (string, error) {
	var cs *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{pod.Status.ContainerStatuses, pod.Status.InitContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				cs = &list[i]
			}
		}
	}
	if cs == nil {
		return "", fmt.Errorf("container %q in pod %q is not available", container, pod.Name)
	}
	last := cs.LastTerminationState.Terminated
	var id string
	switch st := cs.State; {
	case previous:
		if last == nil || last.ContainerID == "" {
			return "", fmt.Errorf("previous terminated container %q in pod %q not found", container, pod.Name)
		}
		id = last.ContainerID
	case st.Running != nil:
		id = cs.ContainerID
	case st.Terminated != nil:
		id = st.Terminated.ContainerID
		if id == "" && last != nil {
			id = last.ContainerID
		}
		if id == "" {
			return "", fmt.Errorf("container %q in pod %q is terminated", container, pod.Name)
		}
	case last != nil:
		if last.ContainerID == "" {
			return "", fmt.Errorf("container %q in pod %q is terminated", container, pod.Name)
		}
		id = last.ContainerID
	case st.Waiting != nil:
		switch st.Waiting.Reason {
		case "ErrImagePull":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: image can't be pulled", container, pod.Name)
		case "ImagePullBackOff":
			return "", fmt.Errorf("container %q in pod %q is waiting to start: trying and failing to pull image", container, pod.Name)
		default:
			return "", fmt.Errorf("container %q in pod %q is waiting to start: %v", container, pod.Name, st.Waiting.Reason)
		}
	default:
		return "", fmt.Errorf("container %q in pod %q is waiting to start - no logs yet", container, pod.Name)
	}
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	return id, nil
}

func (s *Server) serveContainerLogs(w http.ResponseWriter, r *http.Request) {
	ns, podName, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	opts, err := parseLogOptions(r, time.Now())
	if err != nil {
		plainError(w, err.Error(), http.StatusBadRequest)
		return
	}
	pod := s.pod(ns, podName)
	if pod == nil {
		plainError(w, fmt.Sprintf("pod %q cannot be found - no logs available", podName), http.StatusNotFound)
		return
	}
	id, err := logContainerID(pod, container, opts.previous)
	if err != nil {
		plainError(w, err.Error(), http.StatusBadRequest)
		return
	}
	st, err := s.cfg.Runtime.ContainerStatus(r.Context(), &runtimeapi.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		plainError(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.Open(st.Status.LogPath)
	if err != nil {
		plainError(w, fmt.Sprintf("failed to open log file %q: %v", st.Status.LogPath, err), http.StatusBadRequest)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	running := func(ctx context.Context) bool {
		resp, err := s.cfg.Runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		return err == nil && resp.Status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	if err := copyLog(r.Context(), f, flushWriter{w}, opts, running); err != nil && !errors.Is(err, errLimitReached) && r.Context().Err() == nil {
		s.log.Debug("streaming container log", "pod", ns+"/"+podName, "container", container, "err", err)
	}
}

// flushWriter flushes after every write, so that a followed log reaches the client at once.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}

var errLimitReached = errors.New("limitBytes reached")

// copyLog writes the log in f to out as opts asks: from the last tailLines lines and from since
// on, with timestamps, up to limitBytes. Following, it waits at the end of the file for more
// until the container stops running (running says whether it does) or ctx ends.
func copyLog(ctx context.Context, f *os.File, out io.Writer, opts logOptions, running func(context.Context) bool) error {
	if opts.tailLines >= 0 {
		if err := seekTail(f, opts.tailLines); err != nil {
			return err
		}
	}
	var watcher *fsnotify.Watcher
	if opts.follow {
		var err error
		if watcher, err = fsnotify.NewWatcher(); err != nil {
			return err
		}
		defer watcher.Close()
		if err := watcher.Add(f.Name()); err != nil {
			return err
		}
	}
	written := int64(0)
	rd := bufio.NewReader(f)
	var pending []byte // a line read without its newline yet
	final := false     // the container has stopped: read to the end once more
	for {
		line, err := rd.ReadBytes('\n')
		pending = append(pending, line...)
		if err == nil {
			l, perr := parseCRILine(pending)
			pending = pending[:0]
			if perr != nil || (opts.stream != "" && l.stream != opts.stream) || l.time.Before(opts.since) {
				continue
			}
			msg := l.content
			if opts.timestamps {
				msg = append([]byte(l.time.Format(time.RFC3339Nano)+" "), msg...)
			}
			if opts.limitBytes > 0 && written+int64(len(msg)) > opts.limitBytes {
				msg = msg[:opts.limitBytes-written]
			}
			n, werr := out.Write(msg)
			written += int64(n)
			if werr != nil {
				return werr
			}
			if opts.limitBytes > 0 && written >= opts.limitBytes {
				return errLimitReached
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		if !opts.follow || final {
			return nil
		}
		if err := waitForMore(ctx, watcher, running); err != nil {
			if !errors.Is(err, errStopped) {
				return err
			}
			final = true
		}
	}
}

// waitForMore returns when the log file may have grown, or errStopped once the container no
// longer runs or its log is gone (a last read after that sees what it wrote before it stopped).
func waitForMore(ctx context.Context, watcher *fsnotify.Watcher, running func(context.Context) bool) error {
	check := time.NewTimer(time.Second)
	defer check.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case ev, ok := <-watcher.Events:
		if !ok || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			return errStopped
		}
		return nil
	case err := <-watcher.Errors:
		return err
	case <-check.C:
		if !running(ctx) {
			return errStopped
		}
		return nil
	}
}

// errStopped ends a followed log once the last lines are read.
var errStopped = errors.New("container stopped")

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int64) error {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	const block = 32 << 10
	buf := make([]byte, block)
	end := size
	lines := int64(-1) // the file's last newline ends the last line rather than starting one
	for end > 0 {
		start := max(end-block, 0)
		chunk := buf[:end-start]
		if _, err := f.ReadAt(chunk, start); err != nil {
			return err
		}
		for i := len(chunk) - 1; i >= 0; i-- {
			if chunk[i] != '\n' {
				continue
			}
			lines++
			if lines == n {
				_, err := f.Seek(start+int64(i)+1, io.SeekStart)
				return err
			}
		}
		end = start
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
