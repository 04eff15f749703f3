package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	xwebsocket "golang.org/x/net/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/utils/ptr"
)

// streamsPod serves "forwarded bytes" over HTTP on 8080 from its main container, which
// printed line1 and line2 on stdout and one line on stderr; its ticker container prints a
// line a second.
func streamsPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "streams", Labels: map[string]string{"app": "streams"}}, Spec: corev1.PodSpec{
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers: []corev1.Container{
			{Name: "main", Image: busybox, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, Command: []string{"sh", "-c",
				"mkdir -p /www && echo 'forwarded bytes' > /www/index.html && httpd -p 8080 -h /www && echo line1 && echo line2 && echo 'on stderr' >&2 && exec sleep 100000"}},
			{Name: "ticker", Image: busybox, Command: []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"}},
		},
	}}
}

// createPods creates pods in ns.
func createPods(ctx context.Context, ns string, pods ...*corev1.Pod) {
	GinkgoHelper()
	for _, p := range pods {
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	}
}

// portForward runs kubectl port-forward to port 8080 of target until the spec ends, and
// returns the local port it listens on and kubectl's stderr.
func portForward(env []string, ns, target string, args ...string) (string, *cluster.SyncBuffer) {
	GinkgoHelper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := kc.Command(ctx, env, "", append(args, "-n", ns, "port-forward", target, ":8080")...)
	errOut := &cluster.SyncBuffer{}
	cmd.Stderr = errOut
	out, err := cmd.StdoutPipe()
	Expect(err).NotTo(HaveOccurred())
	Expect(cmd.Start()).To(Succeed())
	DeferCleanup(func() { cancel(); _ = cmd.Wait() })
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`^Forwarding from 127\.0\.0\.1:(\d+) -> 8080$`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return m[1], errOut
		}
	}
	Fail("kubectl port-forward printed no local port; stderr: " + errOut.String())
	return "", nil
}

// oneSize is a terminal that has one size.
type oneSize struct{ size *remotecommand.TerminalSize }

func (q *oneSize) Next() *remotecommand.TerminalSize {
	s := q.size
	q.size = nil
	return s
}

// readWebSocket reads every message of a plain WebSocket to the API server at path, spoken in
// protocol, as the upstream conformance suite does for exec and logs.
func readWebSocket(path, protocol string) [][]byte {
	GinkgoHelper()
	tlsConfig, err := rest.TLSConfigFor(testCluster.Config)
	Expect(err).NotTo(HaveOccurred())
	cfg, err := xwebsocket.NewConfig(strings.Replace(testCluster.Config.Host, "https://", "wss://", 1)+path, "http://localhost")
	Expect(err).NotTo(HaveOccurred())
	cfg.Protocol, cfg.TlsConfig = []string{protocol}, tlsConfig
	ws, err := xwebsocket.DialConfig(cfg)
	Expect(err).NotTo(HaveOccurred(), "%s over %s", path, protocol)
	defer ws.Close()
	var msgs [][]byte
	for {
		var msg []byte
		if err := xwebsocket.Message.Receive(ws, &msg); err != nil {
			Expect(err).To(MatchError(io.EOF), "%s over %s", path, protocol)
			return msgs
		}
		msgs = append(msgs, msg)
	}
}

// spdyOnly tells kubectl to speak SPDY from the start, as it does after falling back when the
// server refuses WebSockets.
var spdyOnly = []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false", "KUBECTL_PORT_FORWARD_WEBSOCKETS=false"}

var _ = Describe("Streams of a real node's pods through kubectl", Ordered, func() {
	var ns string
	// k runs kubectl in the namespace.
	k := func(ctx context.Context, stdin string, args ...string) cluster.Result {
		GinkgoHelper()
		return kc.Run(ctx, nil, stdin, append([]string{"-n", ns}, args...)...)
	}
	succeed := func(ctx context.Context, stdin string, args ...string) string {
		GinkgoHelper()
		return kc.Succeed(ctx, nil, stdin, append([]string{"-n", ns}, args...)...)
	}

	BeforeAll(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		attached := shellPod("attached", "while read l; do echo got $l; done")
		attached.Spec.Containers[0].Stdin, attached.Spec.Containers[0].StdinOnce = true, true
		createPods(ctx, ns, streamsPod(), attached)
		waitForReady(ctx, ns, "streams", "attached")
	})

	It("show logs, their tail and their first bytes, and name a container the pod lacks", func(ctx SpecContext) {
		// The runtime reads stdout and stderr apart: lines keep their order within a stream.
		all := succeed(ctx, "", "logs", "streams", "-c", "main")
		Expect(strings.ReplaceAll(all, "on stderr\n", "")).To(Equal("line1\nline2\n"), "logs: %q", all)
		Expect(all).To(ContainSubstring("on stderr\n"))
		Expect(strings.Count(all, "\n")).To(Equal(3), "logs: %q", all)
		lines := strings.SplitAfter(all, "\n")
		Expect(succeed(ctx, "", "logs", "streams", "-c", "main", "--tail=1")).To(Equal(lines[2]))
		Expect(succeed(ctx, "", "logs", "streams", "-c", "main", "--limit-bytes=3")).To(Equal(all[:3]))
		r := k(ctx, "", "logs", "streams", "-c", "nope")
		Expect(r.Code).NotTo(BeZero(), "%s", r)
		Expect(r.Stderr).To(ContainSubstring("container nope is not valid for pod streams"))
	})

	It("follow logs as new lines come", func(ctx SpecContext) {
		cmdCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		cmd := kc.Command(cmdCtx, nil, "", "-n", ns, "logs", "-f", "streams", "-c", "ticker")
		var errOut cluster.SyncBuffer
		cmd.Stderr = &errOut
		out, err := cmd.StdoutPipe()
		Expect(err).NotTo(HaveOccurred())
		Expect(cmd.Start()).To(Succeed())
		sc := bufio.NewScanner(out)
		seen := map[string]bool{}
		for len(seen) < 3 && sc.Scan() {
			seen[sc.Text()] = true
		}
		cancel()
		_ = cmd.Wait()
		Expect(seen).To(HaveLen(3), "stderr: %q", errOut.String())
		for l := range seen {
			Expect(l).To(HavePrefix("tick "))
		}
	})

	It("show the previous run's logs after a restart", func(ctx SpecContext) {
		p := shellPod("restarter", "if [ -e /data/ran ]; then echo second run; exec sleep 100000; fi; touch /data/ran; echo first run; exit 1")
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		createPods(ctx, ns, p)
		succeed(ctx, "", "wait", "--for=jsonpath={.status.containerStatuses[0].restartCount}=1", "pod/restarter", "--timeout=120s")
		succeed(ctx, "", "wait", "--for=condition=Ready", "pod/restarter", "--timeout=120s")
		Expect(succeed(ctx, "", "logs", "restarter", "--previous")).To(Equal("first run\n"))
		Expect(succeed(ctx, "", "logs", "restarter")).To(Equal("second run\n"))
	})

	It("end logs -f when the container ends", func(ctx SpecContext) {
		createPods(ctx, ns, shellPod("finisher", "echo a; sleep 2; echo b"))
		// Until its container starts, the log is refused; once it has, -f returns when it ends.
		var r cluster.Result
		Eventually(func() int { r = k(ctx, "", "logs", "-f", "finisher"); return r.Code }).Should(BeZero())
		Expect(r.Stdout).To(Equal("a\nb\n"), "%s", r)
	})

	It("exec a command and pass its output's exact bytes", func(ctx SpecContext) {
		Expect(succeed(ctx, "", "exec", "streams", "-c", "main", "--", "printf", `a\000b\377\n\r`)).To(Equal("a\x00b\xff\n\r"))
	})

	It("exec with stdin and report the exit code", func(ctx SpecContext) {
		r := k(ctx, "some input\nmore", "exec", "-i", "streams", "-c", "main", "--", "sh", "-c", "cat; echo; echo oops >&2; exit 3")
		Expect(r.Code).To(Equal(3), "%s", r)
		Expect(r.Stdout).To(Equal("some input\nmore\n"))
		// kubectl reports the exit code itself, as it does against upstream.
		Expect(r.Stderr).To(Equal("oops\ncommand terminated with exit code 3\n"))
	})

	It("copy a file into a pod and back", func(ctx SpecContext) {
		dir := GinkgoT().TempDir()
		local, back := filepath.Join(dir, "data.bin"), filepath.Join(dir, "back.bin")
		data := make([]byte, 300<<10)
		_, _ = rand.Read(data)
		Expect(os.WriteFile(local, data, 0o644)).To(Succeed())
		succeed(ctx, "", "cp", local, "streams:/tmp/data.bin", "-c", "main")
		sum := md5.Sum(data)
		Expect(strings.Fields(succeed(ctx, "", "exec", "streams", "-c", "main", "--", "md5sum", "/tmp/data.bin"))[0]).To(Equal(hex.EncodeToString(sum[:])))
		r := k(ctx, "", "cp", "streams:/tmp/data.bin", back, "-c", "main")
		Expect(r.Code).To(BeZero(), "%s", r)
		// kubectl itself says "tar: removing leading '/' from member names".
		if r.Stderr != "" {
			Expect(r.Stderr).To(HavePrefix("tar: "))
		}
		got, err := os.ReadFile(back)
		Expect(err).NotTo(HaveOccurred())
		Expect(bytes.Equal(got, data)).To(BeTrue(), "copied back %d bytes, want %d equal ones", len(got), len(data))
	})

	It("forward a port to a pod", func(ctx SpecContext) {
		port, errOut := portForward(nil, ns, "pod/streams")
		for i := range 3 {
			body, err := get(ctx, "http://127.0.0.1:"+port+"/index.html")
			Expect(err).NotTo(HaveOccurred(), "request %d; kubectl stderr %q", i, errOut.String())
			Expect(body).To(Equal("forwarded bytes\n"), "request %d", i)
		}
		Expect(errOut.String()).To(BeEmpty())
	})

	It("attach to a container's stdin and output", func(ctx SpecContext) {
		// -q leaves out kubectl's own notices about the session.
		Expect(succeed(ctx, "hello\nworld\n", "attach", "-q", "-i", "attached")).To(Equal("got hello\ngot world\n"))
	})

	It("speak WebSockets first, with no fallback", func(ctx SpecContext) {
		// kubectl's verbose log names the protocol it settled on.
		r := k(ctx, "", "-v=4", "exec", "streams", "-c", "main", "--", "echo", "ws")
		Expect(r.Code).To(BeZero(), "%s", r)
		Expect(r.Stdout).To(Equal("ws\n"))
		Expect(r.Stderr).To(ContainSubstring(`"Subprotocol negotiated" protocol="v5.channel.k8s.io"`))
		Expect(r.Stderr).NotTo(ContainSubstring("fallback"))
		port, log := portForward(nil, ns, "pod/streams", "-v=4")
		_, err := get(ctx, "http://127.0.0.1:"+port+"/index.html")
		Expect(err).NotTo(HaveOccurred())
		Expect(log.String()).To(ContainSubstring(`"Negotiation complete" protocol="portforward.k8s.io"`))
		Expect(log.String()).NotTo(ContainSubstring("fallback"))
	})

	It("exec over SPDY", func(ctx SpecContext) {
		r := kc.Run(ctx, spdyOnly, "over spdy", "-n", ns, "exec", "-i", "streams", "-c", "main", "--", "sh", "-c", "cat; printf '\\377'; exit 7")
		Expect(r.Code).To(Equal(7), "%s", r)
		Expect(r.Stdout).To(Equal("over spdy\xff"))
		Expect(r.Stderr).To(Equal("command terminated with exit code 7\n"))
	})

	It("forward a port over SPDY", func(ctx SpecContext) {
		port, errOut := portForward(spdyOnly, ns, "pod/streams")
		body, err := get(ctx, "http://127.0.0.1:"+port+"/index.html")
		Expect(err).NotTo(HaveOccurred(), "kubectl stderr %q", errOut.String())
		Expect(body).To(Equal("forwarded bytes\n"))
		Expect(errOut.String()).To(BeEmpty())
	})

	It("run a pod with stdin and remove it", func(ctx SpecContext) {
		out := succeed(ctx, "piped in\n", "run", "runner", "-q", "-i", "--rm", "--restart=Never", "--image="+busybox,
			"--image-pull-policy=IfNotPresent", "--", "sh", "-c", `read l; echo "read: $l"`)
		Expect(out).To(HavePrefix("read: piped in\n"))
	})

	It("exec with a terminal of the size the client sets, over WebSocket and SPDY", func(ctx SpecContext) {
		u, err := url.Parse(testCluster.Config.Host + "/api/v1/namespaces/" + ns + "/pods/streams/exec?container=main&stdout=true&tty=true" +
			"&command=sh&command=-c&command=" + url.QueryEscape(`while [ "$(stty size 2>/dev/null)" != "45 123" ]; do sleep 0.1; done; echo sized; exit 4`))
		Expect(err).NotTo(HaveOccurred())
		ws, err := remotecommand.NewWebSocketExecutor(testCluster.Config, http.MethodGet, u.String())
		Expect(err).NotTo(HaveOccurred())
		spdy, err := remotecommand.NewSPDYExecutor(testCluster.Config, http.MethodPost, u)
		Expect(err).NotTo(HaveOccurred())
		for name, executor := range map[string]remotecommand.Executor{"WebSocket": ws, "SPDY": spdy} {
			execCtx, cancel := context.WithTimeout(ctx, time.Minute)
			var out bytes.Buffer
			err := executor.StreamWithContext(execCtx, remotecommand.StreamOptions{Stdout: &out, Tty: true,
				TerminalSizeQueue: &oneSize{size: &remotecommand.TerminalSize{Width: 123, Height: 45}}})
			cancel()
			var exitErr utilexec.ExitError
			Expect(errors.As(err, &exitErr)).To(BeTrue(), "%s: %v", name, err)
			Expect(exitErr.ExitStatus()).To(Equal(4), name)
			Expect(out.String()).To(Equal("sized\r\n"), name)
		}
	})

	// The upstream conformance suite reads exec output (channel.k8s.io) and logs (binary.k8s.io)
	// over plain WebSockets.
	It("answer the conformance suite's plain WebSockets for exec and logs", func(ctx SpecContext) {
		var stdout []byte
		for _, m := range readWebSocket("/api/v1/namespaces/"+ns+"/pods/streams/exec?container=main&stdout=1&stderr=1&command=echo&command=remote+execution+test", "channel.k8s.io") {
			if len(m) > 1 {
				Expect(m[0]).To(Equal(byte(1)), "a message on channel %d: %q", m[0], m[1:])
			}
			if len(m) > 0 && m[0] == 1 {
				stdout = append(stdout, m[1:]...)
			}
		}
		Expect(string(stdout)).To(Equal("remote execution test\n"))
		var logs []byte
		for _, m := range readWebSocket("/api/v1/namespaces/"+ns+"/pods/streams/log?container=main", "binary.k8s.io") {
			logs = append(logs, m...)
		}
		// The stderr line may come anywhere among the stdout ones.
		Expect(strings.ReplaceAll(string(logs), "on stderr\n", "")).To(Equal("line1\nline2\n"), "logs: %q", logs)
	})
})
