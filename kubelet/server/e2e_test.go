package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	"github.com/keelson/keelson/kubelet"
	"github.com/keelson/keelson/pki"
	xwebsocket "golang.org/x/net/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
)

// The end-to-end test runs a real node: a Keelson control plane, a private containerd and the
// kubelet in this process, and drives them with the real kubectl, checking what a user sees.
// It needs root and the image archives of busybox and pause (KEELSON_TEST_IMAGES, a directory
// holding busybox.tar and pause.tar).

const nodeName = "stream-node"

func TestKubectlStreamsEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs containerd, runc and pods")
	}
	ensurePackages(t)
	images := os.Getenv("KEELSON_TEST_IMAGES")
	if images == "" {
		images = "/tmp/devimg"
	}
	for _, f := range []string{"busybox.tar", "pause.tar"} {
		if _, err := os.Stat(filepath.Join(images, f)); err != nil {
			t.Skipf("no image archive %s in %s (set KEELSON_TEST_IMAGES)", f, images)
		}
	}
	nodeIP := hostIP(t)

	c, err := cluster.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	if !c.Keelson {
		t.Skip("needs a Keelson server this test starts (KUBECONFIG is set)")
	}
	kc, err := cluster.NewKubectlRunner(c, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)

	dir := shortTempDir(t)
	sock := startContainerd(t, dir)
	for _, f := range []string{"pause.tar", "busybox.tar"} {
		run(t, "ctr", "-a", sock, "-n", "k8s.io", "images", "import", filepath.Join(images, f))
	}
	ca, err := os.ReadFile(filepath.Join(c.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	kubeletDone := make(chan error, 1)
	go func() {
		kubeletDone <- kubelet.Run(ctx, c.Config, kubelet.Options{
			NodeName: nodeName, NodeIP: nodeIP, RuntimeSocket: sock,
			RootDir: filepath.Join(dir, "kubelet"), CNIConfDir: filepath.Join(dir, "net.d"),
			Port: -1, ClientCA: ca,
			Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
		})
	}()
	t.Cleanup(func() {
		// Pods first, while the kubelet still runs, so that it stops their containers.
		k := exec.Command(kubectlPath(t), "--kubeconfig", c.Kubeconfig, "delete", "pod", "--all", "--wait=true", "--timeout=60s")
		_ = k.Run()
		cancel()
		<-kubeletDone
	})

	kctl := func(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmdCtx, cmdCancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cmdCancel()
		cmd := kc.Command(cmdCtx, nil, stdin, args...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exitErr *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &exitErr):
			code = exitErr.ExitCode()
		default:
			t.Fatalf("kubectl %v: %v", args, err)
		}
		return o.String(), e.String(), code
	}
	succeed := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		out, errOut, code := kctl(t, stdin, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("kubectl %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
		return out
	}

	succeed(t, podManifest, "apply", "-f", "-")
	succeed(t, "", "wait", "--for=condition=Ready", "pod/streams", "pod/attached", "--timeout=120s")

	t.Run("logs", func(t *testing.T) {
		// The runtime reads stdout and stderr apart: lines keep their order within a stream.
		all := succeed(t, "", "logs", "streams", "-c", "main")
		if strings.ReplaceAll(all, "on stderr\n", "") != "line1\nline2\n" || !strings.Contains(all, "on stderr\n") || strings.Count(all, "\n") != 3 {
			t.Fatalf("kubectl logs: %q", all)
		}
		lines := strings.SplitAfter(all, "\n")
		if got := succeed(t, "", "logs", "streams", "-c", "main", "--tail=1"); got != lines[2] {
			t.Fatalf("kubectl logs --tail=1: %q after %q", got, all)
		}
		if got := succeed(t, "", "logs", "streams", "-c", "main", "--limit-bytes=3"); got != "lin" {
			t.Fatalf("kubectl logs --limit-bytes=3: %q", got)
		}
		_, errOut, code := kctl(t, "", "logs", "streams", "-c", "nope")
		if code == 0 || !strings.Contains(errOut, "container nope is not valid for pod streams") {
			t.Fatalf("kubectl logs -c nope: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("logs follow", func(t *testing.T) {
		// The ticker container prints a line a second; -f shows new ones as they come.
		cmdCtx, cmdCancel := context.WithCancel(ctx)
		defer cmdCancel()
		cmd := kc.Command(cmdCtx, nil, "", "logs", "-f", "streams", "-c", "ticker")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		seen := map[string]bool{}
		for len(seen) < 3 && sc.Scan() {
			seen[sc.Text()] = true
		}
		cmdCancel()
		_ = cmd.Wait()
		if len(seen) < 3 {
			t.Fatalf("kubectl logs -f showed %v; stderr %q", seen, errOut.String())
		}
		for l := range seen {
			if !strings.HasPrefix(l, "tick ") {
				t.Fatalf("kubectl logs -f: unexpected line %q", l)
			}
		}
	})

	t.Run("logs previous", func(t *testing.T) {
		succeed(t, restarterManifest, "apply", "-f", "-")
		succeed(t, "", "wait", "--for=jsonpath={.status.containerStatuses[0].restartCount}=1", "pod/restarter", "--timeout=120s")
		succeed(t, "", "wait", "--for=condition=Ready", "pod/restarter", "--timeout=120s")
		if got := succeed(t, "", "logs", "restarter", "--previous"); got != "first run\n" {
			t.Fatalf("kubectl logs --previous: %q", got)
		}
		if got := succeed(t, "", "logs", "restarter"); got != "second run\n" {
			t.Fatalf("kubectl logs after a restart: %q", got)
		}
	})

	t.Run("logs follow ends with the container", func(t *testing.T) {
		succeed(t, finisherManifest, "apply", "-f", "-")
		// Until its container starts, the log is refused; once it has, -f returns when it ends.
		var out, errOut string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var code int
			if out, errOut, code = kctl(t, "", "logs", "-f", "finisher"); code == 0 {
				break
			}
		}
		if out != "a\nb\n" {
			t.Fatalf("kubectl logs -f finisher: %q, stderr %q", out, errOut)
		}
	})

	t.Run("exec output bytes", func(t *testing.T) {
		got := succeed(t, "", "exec", "streams", "-c", "main", "--", "printf", `a\000b\377\n\r`)
		if got != "a\x00b\xff\n\r" {
			t.Fatalf("kubectl exec printed %q", got)
		}
	})

	t.Run("exec stdin and exit code", func(t *testing.T) {
		out, errOut, code := kctl(t, "some input\nmore", "exec", "-i", "streams", "-c", "main", "--", "sh", "-c", "cat; echo; echo oops >&2; exit 3")
		if out != "some input\nmore\n" || code != 3 {
			t.Fatalf("kubectl exec -i: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// kubectl reports the exit code itself, as it does against upstream.
		if errOut != "oops\ncommand terminated with exit code 3\n" {
			t.Fatalf("kubectl exec -i stderr: %q", errOut)
		}
	})

	t.Run("cp both ways", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "data.bin")
		data := make([]byte, 300<<10)
		_, _ = rand.Read(data)
		if err := os.WriteFile(local, data, 0o644); err != nil {
			t.Fatal(err)
		}
		succeed(t, "", "cp", local, "streams:/tmp/data.bin", "-c", "main")
		sum := strings.Fields(succeed(t, "", "exec", "streams", "-c", "main", "--", "md5sum", "/tmp/data.bin"))[0]
		if want := md5hex(data); sum != want {
			t.Fatalf("copied file has md5 %s, want %s", sum, want)
		}
		back := filepath.Join(t.TempDir(), "back.bin")
		_, errOut, code := kctl(t, "", "cp", "streams:/tmp/data.bin", back, "-c", "main")
		if code != 0 || (errOut != "" && !strings.HasPrefix(errOut, "tar: ")) {
			t.Fatalf("kubectl cp from pod: exit %d, stderr %q", code, errOut)
		}
		got, err := os.ReadFile(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("copied back %d bytes, want %d equal ones", len(got), len(data))
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		cmdCtx, cmdCancel := context.WithCancel(ctx)
		defer cmdCancel()
		cmd := kc.Command(cmdCtx, nil, "", "port-forward", "pod/streams", ":8080")
		var errOut cluster.SyncBuffer
		cmd.Stderr = &errOut
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmdCancel(); _ = cmd.Wait() }()
		port := forwardedPort(t, out, &errOut)
		for i := range 3 {
			resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
			if err != nil {
				t.Fatalf("request %d through the forward: %v; kubectl stderr %q", i, err, errOut.String())
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if string(body) != "forwarded bytes\n" {
				t.Fatalf("request %d through the forward got %q", i, body)
			}
		}
		if errOut.String() != "" {
			t.Fatalf("kubectl port-forward stderr: %q", errOut.String())
		}
	})

	t.Run("attach", func(t *testing.T) {
		// -q leaves out kubectl's own notices about the session.
		if got := succeed(t, "hello\nworld\n", "attach", "-q", "-i", "attached"); got != "got hello\ngot world\n" {
			t.Fatalf("kubectl attach -i: %q", got)
		}
	})

	t.Run("WebSocket first, no fallback", func(t *testing.T) {
		// kubectl's verbose log names the protocol it settled on.
		out, errOut, code := kctl(t, "", "-v=4", "exec", "streams", "-c", "main", "--", "echo", "ws")
		if code != 0 || out != "ws\n" || !strings.Contains(errOut, `"Subprotocol negotiated" protocol="v5.channel.k8s.io"`) || strings.Contains(errOut, "fallback") {
			t.Fatalf("kubectl exec: exit %d, stdout %q, log:\n%s", code, out, errOut)
		}
		cmdCtx, cmdCancel := context.WithCancel(ctx)
		defer cmdCancel()
		cmd := kc.Command(cmdCtx, nil, "", "-v=4", "port-forward", "pod/streams", ":8080")
		var log cluster.SyncBuffer
		cmd.Stderr = &log
		pipe, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmdCancel(); _ = cmd.Wait() }()
		port := forwardedPort(t, pipe, &log)
		resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if l := log.String(); !strings.Contains(l, `"Negotiation complete" protocol="portforward.k8s.io"`) || strings.Contains(l, "fallback") {
			t.Fatalf("kubectl port-forward did not tunnel over WebSocket:\n%s", l)
		}
	})

	// kubectl falls back to SPDY when the server refuses WebSockets; the same streams work when
	// it is told to use SPDY from the start.
	spdyOnly := []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}

	t.Run("exec over SPDY", func(t *testing.T) {
		cmdCtx, cmdCancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cmdCancel()
		cmd := kc.Command(cmdCtx, spdyOnly, "over spdy", "exec", "-i", "streams", "-c", "main", "--", "sh", "-c", "cat; printf '\\377'; exit 7")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 7 || o.String() != "over spdy\xff" || e.String() != "command terminated with exit code 7\n" {
			t.Fatalf("kubectl exec over SPDY: %v, stdout %q, stderr %q", err, o.String(), e.String())
		}
	})

	t.Run("port-forward over SPDY", func(t *testing.T) {
		cmdCtx, cmdCancel := context.WithCancel(ctx)
		defer cmdCancel()
		cmd := kc.Command(cmdCtx, spdyOnly, "", "port-forward", "pod/streams", ":8080")
		var errOut cluster.SyncBuffer
		cmd.Stderr = &errOut
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmdCancel(); _ = cmd.Wait() }()
		port := forwardedPort(t, out, &errOut)
		resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
		if err != nil {
			t.Fatalf("through the forward: %v; kubectl stderr %q", err, errOut.String())
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "forwarded bytes\n" || errOut.String() != "" {
			t.Fatalf("through the forward got %q; kubectl stderr %q", body, errOut.String())
		}
	})

	t.Run("run --rm -i", func(t *testing.T) {
		out := succeed(t, "piped in\n", "run", "runner", "-q", "-i", "--rm", "--restart=Never", "--image=docker.io/library/busybox:latest",
			"--image-pull-policy=IfNotPresent", "--", "sh", "-c", "read l; echo \"read: $l\"")
		if !strings.HasPrefix(out, "read: piped in\n") {
			t.Fatalf("kubectl run --rm -i: %q", out)
		}
	})

	t.Run("API errors", func(t *testing.T) {
		cases := []struct{ path, want string }{
			{"/api/v1/namespaces/default/pods/streams/log", "Error from server (BadRequest): a container name must be specified for pod streams, choose one of: [main ticker]"},
			{"/api/v1/namespaces/default/pods/streams/log?container=nope", "Error from server (BadRequest): container nope is not valid for pod streams"},
			{"/api/v1/namespaces/default/pods/streams/log?container=main&previous=true", `Error from server (BadRequest): previous terminated container "main" in pod "streams" not found`},
			{"/api/v1/namespaces/default/pods/streams/log?container=main&tailLines=-1", `The PodLogOptions "streams" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0`},
			{"/api/v1/namespaces/default/pods/missing/log", `Error from server (NotFound): pods "missing" not found`},
			{"/api/v1/namespaces/default/services/missing/proxy/", `Error from server (NotFound): services "missing" not found`},
		}
		for _, tc := range cases {
			_, errOut, code := kctl(t, "", "get", "--raw", tc.path)
			if code == 0 || strings.TrimSpace(errOut) != tc.want {
				t.Errorf("GET %s: exit %d, stderr %q, want %q", tc.path, code, errOut, tc.want)
			}
		}
	})

	t.Run("kubelet API authentication", func(t *testing.T) {
		node, err := c.Clientset().CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("https://%s/pods", net.JoinHostPort(nodeIP.String(), strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))))
		bundle, err := pki.Load(filepath.Join(c.DataDir, "pki"))
		if err != nil {
			t.Fatal(err)
		}
		identity := func(name, user string, groups []string) []tls.Certificate {
			certPath, keyPath, err := bundle.ClientPair(name, user, groups)
			if err != nil {
				t.Fatal(err)
			}
			pair, err := tls.LoadX509KeyPair(certPath, keyPath)
			if err != nil {
				t.Fatal(err)
			}
			return []tls.Certificate{pair}
		}
		for _, tc := range []struct {
			name  string
			certs []tls.Certificate
			code  int
		}{
			{"no certificate", nil, http.StatusUnauthorized},
			{"another user", identity("stream-test-jane", "jane", []string{"developers"}), http.StatusForbidden},
			{"an admin", identity("stream-test-admin", "root-admin", []string{"system:masters"}), http.StatusOK},
			{"the API server", identity("stream-test-apiserver", "kube-apiserver-kubelet-client", nil), http.StatusOK},
		} {
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: tc.certs, InsecureSkipVerify: true}}}
			resp, err := client.Get(url)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.code)
			}
		}
	})

	t.Run("exec with a terminal and resize", func(t *testing.T) {
		u, err := url.Parse(c.Config.Host + "/api/v1/namespaces/default/pods/streams/exec?container=main&stdout=true&tty=true" +
			"&command=sh&command=-c&command=" + url.QueryEscape(`while [ "$(stty size 2>/dev/null)" != "45 123" ]; do sleep 0.1; done; echo sized; exit 4`))
		if err != nil {
			t.Fatal(err)
		}
		ws, err := remotecommand.NewWebSocketExecutor(c.Config, http.MethodGet, u.String())
		if err != nil {
			t.Fatal(err)
		}
		spdy, err := remotecommand.NewSPDYExecutor(c.Config, http.MethodPost, u)
		if err != nil {
			t.Fatal(err)
		}
		for name, executor := range map[string]remotecommand.Executor{"WebSocket": ws, "SPDY": spdy} {
			execCtx, execCancel := context.WithTimeout(ctx, time.Minute)
			var out bytes.Buffer
			err := executor.StreamWithContext(execCtx, remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: &oneSize{size: &remotecommand.TerminalSize{Width: 123, Height: 45}}})
			execCancel()
			var exitErr utilexec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitStatus() != 4 || out.String() != "sized\r\n" {
				t.Errorf("%s: %v, output %q", name, err, out.String())
			}
		}
	})

	t.Run("services proxy", func(t *testing.T) {
		succeed(t, serviceManifest, "apply", "-f", "-")
		for _, path := range []string{"/api/v1/namespaces/default/services/web:http/proxy/index.html", "/api/v1/namespaces/default/services/http:web:80/proxy/index.html"} {
			// The Service's endpoints are published by the controllers; wait for them.
			var out, errOut string
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				var code int
				if out, errOut, code = kctl(t, "", "get", "--raw", path); code == 0 {
					break
				}
			}
			if out != "forwarded bytes\n" {
				t.Fatalf("services/proxy %s: %q, stderr %q", path, out, errOut)
			}
		}
	})

	// The upstream conformance suite reads exec output (channel.k8s.io) and logs (binary.k8s.io)
	// over plain WebSockets.
	t.Run("conformance suite WebSockets", func(t *testing.T) {
		read := func(path string, protocol string) [][]byte {
			t.Helper()
			tlsConfig, err := rest.TLSConfigFor(c.Config)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := xwebsocket.NewConfig(strings.Replace(c.Config.Host, "https://", "wss://", 1)+path, "http://localhost")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Protocol, cfg.TlsConfig = []string{protocol}, tlsConfig
			ws, err := xwebsocket.DialConfig(cfg)
			if err != nil {
				t.Fatalf("%s over %s: %v", path, protocol, err)
			}
			defer ws.Close()
			var msgs [][]byte
			for {
				var msg []byte
				if err := xwebsocket.Message.Receive(ws, &msg); err != nil {
					if err != io.EOF {
						t.Fatalf("%s over %s: %v", path, protocol, err)
					}
					return msgs
				}
				msgs = append(msgs, msg)
			}
		}
		var stdout []byte
		for _, m := range read("/api/v1/namespaces/default/pods/streams/exec?container=main&stdout=1&stderr=1&command=echo&command=remote+execution+test", "channel.k8s.io") {
			if len(m) > 1 && m[0] != 1 {
				t.Fatalf("exec over channel.k8s.io: a message on channel %d: %q", m[0], m[1:])
			}
			if len(m) > 0 && m[0] == 1 {
				stdout = append(stdout, m[1:]...)
			}
		}
		if string(stdout) != "remote execution test\n" {
			t.Fatalf("exec over channel.k8s.io: stdout %q", stdout)
		}
		var logs []byte
		for _, m := range read("/api/v1/namespaces/default/pods/streams/log?container=main", "binary.k8s.io") {
			logs = append(logs, m...)
		}
		if !strings.HasPrefix(string(logs), "line1\n") {
			t.Fatalf("logs over binary.k8s.io: %q", logs)
		}
	})

	t.Run("pods proxy", func(t *testing.T) {
		if got := succeed(t, "", "get", "--raw", "/api/v1/namespaces/default/pods/streams:8080/proxy/index.html"); got != "forwarded bytes\n" {
			t.Fatalf("pods/proxy: %q", got)
		}
	})

	t.Run("nodes proxy", func(t *testing.T) {
		if got := succeed(t, "", "get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/healthz"); got != "ok" {
			t.Fatalf("nodes/proxy healthz: %q", got)
		}
		if got := succeed(t, "", "get", "--raw", "/api/v1/nodes/"+nodeName+"/proxy/pods"); !strings.Contains(got, `"name":"streams"`) {
			t.Fatalf("nodes/proxy pods: %s", got)
		}
	})
}

const podManifest = `
apiVersion: v1
kind: Pod
metadata:
  name: streams
  labels:
    app: streams
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: docker.io/library/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "mkdir -p /www && echo 'forwarded bytes' > /www/index.html && httpd -p 8080 -h /www && echo line1 && echo line2 && echo 'on stderr' >&2 && exec sleep 100000"]
    ports:
    - containerPort: 8080
  - name: ticker
    image: docker.io/library/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: attached
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: main
    image: docker.io/library/busybox:latest
    imagePullPolicy: IfNotPresent
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "while read l; do echo got $l; done"]
`

// forwardedPort reads kubectl port-forward's output up to the local port it listens on, and
// drains the rest.
func forwardedPort(t *testing.T, out io.Reader, errOut *cluster.SyncBuffer) string {
	t.Helper()
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return m[1]
		}
	}
	t.Fatalf("kubectl port-forward printed no local port; stderr %q", errOut.String())
	return ""
}

const restarterManifest = `
apiVersion: v1
kind: Pod
metadata:
  name: restarter
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: docker.io/library/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "if [ -e /data/ran ]; then echo second run; exec sleep 100000; fi; touch /data/ran; echo first run; exit 1"]
    volumeMounts:
    - name: data
      mountPath: /data
  volumes:
  - name: data
    emptyDir: {}
`

const finisherManifest = `
apiVersion: v1
kind: Pod
metadata:
  name: finisher
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: docker.io/library/busybox:latest
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo a; sleep 2; echo b"]
`

const serviceManifest = `
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: streams
  ports:
  - name: http
    port: 80
    targetPort: 8080
`

// oneSize is a terminal that has one size.
type oneSize struct{ size *remotecommand.TerminalSize }

func (q *oneSize) Next() *remotecommand.TerminalSize {
	s := q.size
	q.size = nil
	return s
}

// ensurePackages installs what the node needs when it is missing, as on a fresh Debian.
func ensurePackages(t *testing.T) {
	t.Helper()
	missing := false
	for _, c := range []string{"containerd", "runc", "ctr"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = true
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		missing = true
	}
	if !missing {
		return
	}
	cmd := exec.Command("apt-get", "install", "-y", "containerd", "runc", "containernetworking-plugins")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing containerd, runc and CNI plugins: %v\n%s", err, out)
	}
}

// startContainerd runs a private containerd with its state under dir, and returns its socket.
func startContainerd(t *testing.T, dir string) string {
	t.Helper()
	sock := filepath.Join(dir, "containerd.sock")
	config := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10.2"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[4]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock, filepath.Join(dir, "net.d"))
	path := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Remove what is left (containers, sandboxes and their network) before containerd goes.
		_ = exec.Command("sh", "-c", fmt.Sprintf(
			"ctr -a %[1]s -n k8s.io tasks ls -q | xargs -r -n1 ctr -a %[1]s -n k8s.io tasks kill -s SIGKILL", sock)).Run()
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		_ = logFile.Close()
		_ = exec.Command("sh", "-c", "grep -l "+dir+" /proc/mounts >/dev/null; awk '{print $2}' /proc/mounts | grep '^"+dir+"' | sort -r | xargs -r -n1 umount -l").Run()
	})
	for range 300 {
		if err := exec.Command("ctr", "-a", sock, "version").Run(); err == nil {
			return sock
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
	t.Fatalf("containerd did not start:\n%s", b)
	return ""
}

// shortTempDir is a temporary directory with a path short enough for unix sockets.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "ks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// hostIP is the host's first global IPv4 address, the node's InternalIP.
func hostIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !strings.HasPrefix(n.IP.String(), "10.244.") {
			return n.IP
		}
	}
	t.Skip("the host has no global IPv4 address for the node")
	return nil
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func kubectlPath(t *testing.T) string {
	p, err := cluster.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func md5hex(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
