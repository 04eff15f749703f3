package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// extraNode is a node StartNode's cluster gained with AddNode.
type extraNode struct {
	name, dir string
	cmd       *exec.Cmd
	log       *SyncBuffer
}

// AddNode starts one more node on this host for a cluster StartNode started: `keelson agent
// --netns <name>`, joined with the admin kubeconfig, in a network namespace of its own (named
// after the node) with its own containerd, data directory and podCIDR. It returns once the
// agent runs; the node registers itself and becomes Ready shortly after. RemoveNode or Stop
// end it.
func (c *Cluster) AddNode(name string) error {
	if !c.Keelson || !c.agent {
		return fmt.Errorf("cluster: only a node cluster this package started can gain nodes")
	}
	bin, err := Binary("keelson", "./cmd/keelson")
	if err != nil {
		return err
	}
	dir, err := nodeDataDir(bin, "keelson-node-"+name+"-")
	if err != nil {
		return err
	}
	n := &extraNode{name: name, dir: dir, log: &SyncBuffer{}}
	n.cmd = exec.Command(bin, "agent", "--netns", name, "--node-name", name, "--kubeconfig", c.Kubeconfig, "--data-dir", dir)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	c.nodes = append(c.nodes, n)
	return nil
}

// NodeLog is what a node AddNode started printed.
func (c *Cluster) NodeLog(name string) string {
	for _, n := range c.nodes {
		if n.name == name {
			return n.log.String()
		}
	}
	return ""
}

// RemoveNode stops a node AddNode started, removes its network namespace, containers and data,
// and deletes its Node.
func (c *Cluster) RemoveNode(ctx context.Context, name string) error {
	for i, n := range c.nodes {
		if n.name == name {
			c.nodes = append(c.nodes[:i], c.nodes[i+1:]...)
			n.stop()
			err := c.Clientset().CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
			return err
		}
	}
	return fmt.Errorf("cluster: no node %s was added", name)
}

func (n *extraNode) stop() {
	interrupt(n.cmd, 45*time.Second)
	purgeDataDir(n.dir)
	// The agent removes its namespace on a clean exit; after a kill it is left.
	if _, err := os.Stat(filepath.Join("/var/run/netns", n.name)); err == nil {
		_ = exec.Command("ip", "netns", "delete", n.name).Run()
	}
}
