// Package cluster gives the behaviour suites the cluster they run against: the one KUBECONFIG
// names, so that the same suite can be pointed at upstream Kubernetes to prove the test itself
// right; or, when KUBECONFIG is not set, a `keelson server --disable-agent` it builds and starts.
package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Cluster is a running cluster under test.
type Cluster struct {
	// Kubeconfig is the path of an admin kubeconfig.
	Kubeconfig string
	Config     *rest.Config
	// Keelson is true when this package started the server (and so may restart it).
	Keelson bool
	// DataDir is the started server's data directory.
	DataDir string

	cmd  *exec.Cmd
	port int
	log  *SyncBuffer
	// agent is true when the started server runs its node agent.
	agent bool
	// nodes are the nodes AddNode started.
	nodes []*extraNode
}

// Start returns the cluster named by KUBECONFIG, or starts a Keelson server.
func Start() (*Cluster, error) {
	if path := os.Getenv("KUBECONFIG"); path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, err
		}
		return &Cluster{Kubeconfig: path, Config: tune(cfg)}, nil
	}
	bin, err := Binary("keelson", "./cmd/keelson")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "keelson-test-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &Cluster{Keelson: true, DataDir: dir, port: port, Kubeconfig: filepath.Join(dir, "admin.kubeconfig")}
	if err := c.launch(bin); err != nil {
		return nil, err
	}
	return c, nil
}

func tune(cfg *rest.Config) *rest.Config {
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
}

func (c *Cluster) launch(bin string) error {
	c.log = &SyncBuffer{}
	args := []string{"server", "--data-dir", c.DataDir, "--secure-port", strconv.Itoa(c.port)}
	if c.agent {
		// Pods reach the API server through the kubernetes Service, at the advertised address.
		args = append(args, "--bind-address", "0.0.0.0")
	} else {
		args = append(args, "--disable-agent", "--bind-address", "127.0.0.1")
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(c.log.String(), "export KUBECONFIG=") {
			cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
			if err != nil {
				return err
			}
			c.Config = tune(cfg)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = c.cmd.Process.Kill()
	return fmt.Errorf("keelson server did not become ready:\n%s", c.log.String())
}

// Restart stops the started server and starts it again on the same data, as a user would.
func (c *Cluster) Restart(kill bool) error {
	if !c.Keelson {
		return fmt.Errorf("cluster: only a started Keelson server can be restarted")
	}
	if kill {
		_ = c.cmd.Process.Kill()
	} else {
		_ = c.cmd.Process.Signal(os.Interrupt)
	}
	_ = c.cmd.Wait()
	bin, err := Binary("keelson", "./cmd/keelson")
	if err != nil {
		return err
	}
	return c.launch(bin)
}

// Stop ends a started server and removes its data; a node's containers go with it.
func (c *Cluster) Stop() {
	if !c.Keelson || c.cmd == nil {
		return
	}
	for _, n := range c.nodes {
		n.stop()
	}
	c.nodes = nil
	interrupt(c.cmd, 10*time.Second)
	if c.agent {
		c.purgeNode()
		return
	}
	_ = os.RemoveAll(c.DataDir)
}

// Log is what the started server printed.
func (c *Cluster) Log() string {
	if c.log == nil {
		return ""
	}
	return c.log.String()
}

// Clientset is a typed client for the cluster.
func (c *Cluster) Clientset() kubernetes.Interface { return kubernetes.NewForConfigOrDie(c.Config) }

// Kubectl returns the path of kubectl built from k8s.io/kubectl at our version, stamped with
// that version so that it reports no version skew.
func Kubectl() (string, error) {
	const v = "k8s.io/component-base/version"
	return Binary("kubectl", "./conformance/kubectl",
		"-X", v+".gitVersion=v1.37.2", "-X", v+".gitMajor=1", "-X", v+".gitMinor=37", "-X", v+".gitTreeState=clean")
}

// Binary builds the command at pkg (a path relative to the repository root) into bin/ of the
// repository and returns its path; ldflags are passed to the linker. BIN_<name> names a prebuilt
// binary instead.
func Binary(name, pkg string, ldflags ...string) (string, error) {
	if p := os.Getenv("BIN_" + name); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(root, "bin", name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	args := []string{"build", "-o", out}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// RepoRoot is the repository's top directory.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cluster: cannot locate the repository")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
