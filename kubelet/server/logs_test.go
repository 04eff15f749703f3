package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
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
