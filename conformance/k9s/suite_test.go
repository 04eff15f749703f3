// Package k9s holds the behaviour suite of the cluster as k9s, the terminal UI for Kubernetes,
// shows it: the k9s binary named by K9S_BINARY runs in a detached tmux session of a fixed size
// against any cluster (KUBECONFIG) or a keelson server the suite starts, the suite types its
// commands with send-keys and reads what a user would see with capture-pane. `make test` builds
// k9s from hack/k9s and sets K9S_BINARY; without it the suite skips. tmux must be on PATH.
package k9s

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/kubernetes"
)

var (
	testCluster *cluster.Cluster
	client      kubernetes.Interface
	k9sBin      string
	tmuxBin     string
)

// Screen size of the terminal k9s draws in: wide enough that no column the suite reads is cut.
const (
	screenWidth  = 200
	screenHeight = 50
)

// tmuxTimeout bounds one tmux invocation.
const tmuxTimeout = 10 * time.Second

func TestK9s(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "k9s behaviour")
}

var _ = BeforeSuite(func() {
	k9sBin = os.Getenv("K9S_BINARY")
	if k9sBin == "" {
		Skip("K9S_BINARY is not set: build k9s (github.com/derailed/k9s) and name it in K9S_BINARY to run the k9s suite")
	}
	var err error
	k9sBin, err = filepath.Abs(k9sBin)
	Expect(err).NotTo(HaveOccurred())
	Expect(k9sBin).To(BeAnExistingFile(), "K9S_BINARY")
	tmuxBin, err = exec.LookPath("tmux")
	Expect(err).NotTo(HaveOccurred(), "the k9s suite drives k9s in tmux: install tmux")
	testCluster, err = cluster.Start()
	Expect(err).NotTo(HaveOccurred())
	client = testCluster.Clientset()
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
})

var _ = AfterSuite(func() {
	if testCluster != nil {
		testCluster.Stop()
	}
})

// terminal is one k9s running in a tmux server private to it.
type terminal struct {
	// home holds the tmux socket and k9s's configuration, state and log.
	home    string
	socket  string
	logFile string
}

// session is the name of the tmux session k9s runs in.
const session = "k9s"

// startK9s runs k9s, with its own configuration and the cluster's kubeconfig, in the namespace
// ns, and stops it when the spec (or container) that started it ends.
func startK9s(ns string) *terminal {
	GinkgoHelper()
	home, err := os.MkdirTemp("", "keelson-k9s-")
	Expect(err).NotTo(HaveOccurred())
	t := &terminal{home: home, socket: filepath.Join(home, "tmux.sock"), logFile: filepath.Join(home, "k9s.log")}
	// k9s asks the internet for its latest release unless told not to: the suite stays local.
	config := filepath.Join(home, "config", "k9s", "config.yaml")
	Expect(os.MkdirAll(filepath.Dir(config), 0o755)).To(Succeed())
	Expect(os.WriteFile(config, []byte("k9s:\n  skipLatestRevCheck: true\n"), 0o644)).To(Succeed())
	// A pane whose k9s exits stays on screen, so that a crash is read rather than lost.
	tmuxConf := filepath.Join(home, "tmux.conf")
	Expect(os.WriteFile(tmuxConf, []byte("set-option -g remain-on-exit on\n"), 0o644)).To(Succeed())

	DeferCleanup(func() {
		_, _ = t.tmux("kill-server")
		_ = os.RemoveAll(home)
	})
	_, err = t.tmux("-f", tmuxConf, "new-session", "-d", "-s", session,
		"-x", fmt.Sprint(screenWidth), "-y", fmt.Sprint(screenHeight),
		"env",
		"KUBECONFIG="+testCluster.Kubeconfig,
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"XDG_STATE_HOME="+filepath.Join(home, "state"),
		"XDG_DATA_HOME="+filepath.Join(home, "data"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"TERM=xterm-256color",
		k9sBin, "--headless", "--logoless", "--splashless", "--namespace", ns,
		"--logFile", t.logFile, "--logLevel", "info")
	Expect(err).NotTo(HaveOccurred())
	return t
}

// tmux runs one command against this terminal's tmux server and returns its output.
func (t *terminal) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tmuxTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, tmuxBin, append([]string{"-S", t.socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("tmux %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// capture is what the terminal shows now.
func (t *terminal) capture() (string, error) {
	return t.tmux("capture-pane", "-p", "-t", session)
}

// screen is what the terminal shows now, for Eventually: once k9s has exited, waiting longer
// shows nothing new.
func (t *terminal) screen() (string, error) {
	s, err := t.capture()
	if err == nil && strings.Contains(s, "Pane is dead") {
		return s, StopTrying("k9s exited:\n" + s + "\nk9s log:\n" + t.log())
	}
	return s, err
}

// command types a k9s command (":ns" and the like) and Enter.
func (t *terminal) command(c string) {
	GinkgoHelper()
	_, err := t.tmux("send-keys", "-t", session, c, "Enter")
	Expect(err).NotTo(HaveOccurred())
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// log is k9s's own log, without its colours.
func (t *terminal) log() string {
	b, err := os.ReadFile(t.logFile)
	if err != nil {
		return fmt.Sprintf("(no k9s log: %v)", err)
	}
	return ansi.ReplaceAllString(string(b), "")
}

// describe is the failure text of an Eventually on the screen: what the terminal shows and
// k9s's log.
func (t *terminal) describe(what string) func() string {
	return func() string {
		screen, err := t.capture()
		if err != nil {
			screen = err.Error()
		}
		return fmt.Sprintf("%s\nscreen:\n%s\nk9s log:\n%s", what, screen, t.log())
	}
}

// view is one table as k9s draws it: the title of its frame and the first cell of each row.
type view struct {
	Title string
	Names []string
}

var (
	titleLine = regexp.MustCompile(`^┌─+ (.+?) ─+┐$`)
	// A namespace row marks favourites with "+" and the current namespace with "(*)".
	nameMarks = regexp.MustCompile(`(\+|\(\*\))+$`)
)

// parseView reads the table on a screen: the row under the frame's title is the header.
func parseView(screen string) view {
	var v view
	header := true
	for _, line := range strings.Split(screen, "\n") {
		line = strings.TrimRight(line, " ")
		if m := titleLine.FindStringSubmatch(line); m != nil {
			v.Title, header = m[1], true
			continue
		}
		if v.Title == "" || !strings.HasPrefix(line, "│") {
			continue
		}
		fields := strings.Fields(strings.Trim(line, "│"))
		if len(fields) == 0 {
			continue
		}
		if header {
			header = false
			continue
		}
		v.Names = append(v.Names, nameMarks.ReplaceAllString(fields[0], ""))
	}
	return v
}

// currentView is the table the terminal shows now.
func (t *terminal) currentView() (view, error) {
	s, err := t.screen()
	if err != nil {
		return view{}, err
	}
	return parseView(s), nil
}

// errorLines are the lines of k9s's log at error level.
func errorLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, " ERR ") || strings.Contains(line, " FTL ") || strings.Contains(line, "panic:") {
			out = append(out, line)
		}
	}
	return out
}
