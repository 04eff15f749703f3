package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseCRILine(t *testing.T) {
	ts := time.Date(2016, 10, 6, 0, 17, 9, 669794202, time.UTC)
	cases := []struct {
		name    string
		line    string
		want    logLine
		wantErr bool
	}{
		{name: "full stdout line", line: "2016-10-06T00:17:09.669794202Z stdout F hello world\n",
			want: logLine{time: ts, stream: "stdout", content: []byte("hello world\n")}},
		{name: "partial stderr line keeps no newline", line: "2016-10-06T00:17:09.669794202Z stderr P part one\n",
			want: logLine{time: ts, stream: "stderr", partial: true, content: []byte("part one")}},
		{name: "full empty line", line: "2016-10-06T00:17:09.669794202Z stdout F \n",
			want: logLine{time: ts, stream: "stdout", content: []byte("\n")}},
		{name: "full empty line without the space", line: "2016-10-06T00:17:09.669794202Z stdout F\n",
			want: logLine{time: ts, stream: "stdout", content: []byte("\n")}},
		{name: "content with spaces and tabs kept", line: "2016-10-06T00:17:09.669794202Z stdout F  a\tb  \n",
			want: logLine{time: ts, stream: "stdout", content: []byte(" a\tb  \n")}},
		{name: "several tags", line: "2016-10-06T00:17:09.669794202Z stdout P:x tail\n",
			want: logLine{time: ts, stream: "stdout", partial: true, content: []byte("tail")}},
		{name: "line without its newline", line: "2016-10-06T00:17:09.669794202Z stdout F last",
			want: logLine{time: ts, stream: "stdout", content: []byte("last\n")}},
		{name: "bad timestamp", line: "yesterday stdout F x\n", wantErr: true},
		{name: "unknown stream", line: "2016-10-06T00:17:09.669794202Z stdin F x\n", wantErr: true},
		{name: "no stream", line: "2016-10-06T00:17:09.669794202Z\n", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCRILine([]byte(tc.line))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("parsed %q without error: %+v", tc.line, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.time.Equal(tc.want.time) || got.stream != tc.want.stream || got.partial != tc.want.partial || !bytes.Equal(got.content, tc.want.content) {
				t.Fatalf("got %+v (content %q), want %+v (content %q)", got, got.content, tc.want, tc.want.content)
			}
		})
	}
}

// A log file as containerd writes it: a partial line split in two, both streams.
const sampleLog = `2024-01-01T00:00:01.000000000Z stdout F one
2024-01-01T00:00:02.000000000Z stderr F two
2024-01-01T00:00:03.000000000Z stdout P thr
2024-01-01T00:00:03.500000000Z stdout F ee
2024-01-01T00:00:04.000000000Z stdout F four
`

func TestCopyLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(sampleLog), 0o600); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2024, 1, 1, 0, 0, 2, 500000000, time.UTC)
	cases := []struct {
		name string
		opts logOptions
		want string
	}{
		{name: "all", opts: logOptions{tailLines: -1}, want: "one\ntwo\nthree\nfour\n"},
		{name: "tail 2 counts file lines", opts: logOptions{tailLines: 2}, want: "ee\nfour\n"},
		{name: "tail 0", opts: logOptions{tailLines: 0}, want: ""},
		{name: "tail more than there is", opts: logOptions{tailLines: 100}, want: "one\ntwo\nthree\nfour\n"},
		{name: "since", opts: logOptions{tailLines: -1, since: since}, want: "three\nfour\n"},
		{name: "limit bytes cuts a line", opts: logOptions{tailLines: -1, limitBytes: 6}, want: "one\ntw"},
		{name: "stderr only", opts: logOptions{tailLines: -1, stream: "stderr"}, want: "two\n"},
		{name: "timestamps on every piece", opts: logOptions{tailLines: 3, timestamps: true},
			want: "2024-01-01T00:00:03Z thr2024-01-01T00:00:03.5Z ee\n2024-01-01T00:00:04Z four\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var out bytes.Buffer
			err = copyLog(context.Background(), f, &out, tc.opts, func(context.Context) bool { return false })
			if err != nil && err != errLimitReached {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

// A followed log of a container that has stopped ends after its last lines.
func TestCopyLogFollowEndsWhenContainerStops(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(sampleLog), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	if err := copyLog(context.Background(), f, &out, logOptions{tailLines: 1, follow: true}, func(context.Context) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if out.String() != "four\n" {
		t.Fatalf("got %q", out.String())
	}
}

func TestLogContainerID(t *testing.T) {
	pod := func(st corev1.ContainerStatus) *corev1.Pod {
		st.Name = "c"
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{st}}}
	}
	terminated := func(id string) *corev1.ContainerStateTerminated {
		return &corev1.ContainerStateTerminated{ContainerID: id, ExitCode: 1}
	}
	cases := []struct {
		name     string
		pod      *corev1.Pod
		previous bool
		wantID   string
		wantErr  string
	}{
		{name: "running", pod: pod(corev1.ContainerStatus{ContainerID: "containerd://abc", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}), wantID: "abc"},
		{name: "previous", previous: true, wantID: "old",
			pod: pod(corev1.ContainerStatus{ContainerID: "containerd://abc", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				LastTerminationState: corev1.ContainerState{Terminated: terminated("containerd://old")}})},
		{name: "no previous", previous: true, wantErr: `previous terminated container "c" in pod "p" not found`,
			pod: pod(corev1.ContainerStatus{ContainerID: "containerd://abc", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})},
		{name: "terminated", wantID: "done", pod: pod(corev1.ContainerStatus{State: corev1.ContainerState{Terminated: terminated("containerd://done")}})},
		{name: "waiting after a run shows the last one", wantID: "old",
			pod: pod(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: terminated("containerd://old")}})},
		{name: "creating", wantErr: `container "c" in pod "p" is waiting to start: ContainerCreating`,
			pod: pod(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}})},
		{name: "image pull", wantErr: `container "c" in pod "p" is waiting to start: image can't be pulled`,
			pod: pod(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull"}}})},
		{name: "image pull back-off", wantErr: `container "c" in pod "p" is waiting to start: trying and failing to pull image`,
			pod: pod(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}})},
		{name: "no state yet", wantErr: `container "c" in pod "p" is waiting to start - no logs yet`, pod: pod(corev1.ContainerStatus{})},
		{name: "no status", wantErr: `container "c" in pod "p" is not available`, pod: &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := logContainerID(tc.pod, "c", tc.previous)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got %q, %v; want error %q", id, err, tc.wantErr)
				}
				return
			}
			if err != nil || id != tc.wantID {
				t.Fatalf("got %q, %v; want %q", id, err, tc.wantID)
			}
		})
	}
}
