// Package simulator runs simulated nodes, a testing tool in the manner of kwok: it registers
// nodes with capacity, keeps their leases fresh and moves the pods bound to them through their
// lifecycle, while no container runs anywhere. The nodes say what they are (the SimulatedLabel
// label and annotation); nothing else in Keelson treats them specially.
package simulator

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	// SimulatedLabel marks a node as simulated: no container runs on it.
	SimulatedLabel = "node.keelson.dev/simulated"
	// simulatedNote is the annotation that says so in words, for `kubectl describe node`.
	simulatedNote = "keelson simulate-nodes: a simulated node; no container runs on it"
	// kubeletVersion is the version the nodes report, that of the cluster.
	kubeletVersion = "v1.37.2"
	// leaseDuration and renewInterval are the kubelet's defaults: a lease of 40s renewed
	// every quarter of it.
	leaseDuration = 40 * time.Second
	renewInterval = leaseDuration / 4
	// statusReportInterval is how often a node posts its status when nothing changed, the
	// kubelet's nodeStatusReportFrequency.
	statusReportInterval = 5 * time.Minute
)

// Options describe the simulated nodes.
type Options struct {
	// Count is how many nodes to run.
	Count int
	// Prefix starts each node's name, which ends in its index (default "sim-node-").
	Prefix string
	// CPU, Memory and Pods are each node's capacity (default 32 cores, 256Gi, 110 pods).
	CPU, Memory, Pods string
	// Labels are added to every node's labels.
	Labels map[string]string
	// Workers update pod statuses in parallel (default 16).
	Workers int
	Log     *slog.Logger
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "sim-node-"
	}
	if o.CPU == "" {
		o.CPU = "32"
	}
	if o.Memory == "" {
		o.Memory = "256Gi"
	}
	if o.Pods == "" {
		o.Pods = "110"
	}
	if o.Workers == 0 {
		o.Workers = 16
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Nodes are running simulated nodes.
type Nodes struct {
	opts   Options
	client kubernetes.Interface
	// index maps a node name to its index, which fixes its addresses.
	index map[string]int
	names []string

	pods *podRunner
	done chan struct{}

	// stops end one node's heartbeat each, for tests of nodes that die.
	mu    sync.Mutex
	stops map[string]context.CancelFunc
	dead  map[string]bool
}

// Start registers the nodes, waits until they exist, and runs them until ctx is done; Wait
// returns once they have stopped. cfg's rate limits are raised to carry the nodes' traffic.
func Start(ctx context.Context, cfg *rest.Config, opts Options) (*Nodes, error) {
	opts.defaults()
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "keelson-simulate-nodes"
	cfg.QPS, cfg.Burst = max(cfg.QPS, 2000), max(cfg.Burst, 4000)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	n := &Nodes{opts: opts, client: client, index: map[string]int{}, done: make(chan struct{}), stops: map[string]context.CancelFunc{}, dead: map[string]bool{}}
	for i := range opts.Count {
		name := fmt.Sprintf("%s%d", opts.Prefix, i)
		n.index[name] = i
		n.names = append(n.names, name)
	}
	if err := n.registerAll(ctx); err != nil {
		return nil, err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	n.pods, err = newPodRunner(n, factory)
	if err != nil {
		return nil, err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), n.pods.synced) {
		factory.Shutdown()
		return nil, ctx.Err()
	}
	heartbeats := map[string]context.Context{}
	for _, name := range n.names {
		heartbeats[name], n.stops[name] = context.WithCancel(ctx)
	}
	go func() {
		defer close(n.done)
		defer factory.Shutdown()
		var wg sync.WaitGroup
		for _, name := range n.names {
			wg.Go(func() { n.heartbeat(heartbeats[name], name) })
		}
		wg.Go(func() { n.pods.run(ctx, opts.Workers) })
		wg.Wait()
	}()
	opts.Log.Info("simulated nodes running", "count", opts.Count, "prefix", opts.Prefix)
	return n, nil
}

// Names are the nodes' names.
func (n *Nodes) Names() []string { return n.names }

// StopHeartbeat stops one node, as if its kubelet died: its lease is no longer renewed, its
// status no longer posted, and its pods are left as they are, even when deleted.
func (n *Nodes) StopHeartbeat(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if stop, ok := n.stops[name]; ok {
		stop()
		n.dead[name] = true
	}
}

func (n *Nodes) isDead(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dead[name]
}

// Wait blocks until the nodes have stopped.
func (n *Nodes) Wait() { <-n.done }

// registerAll creates the nodes (or takes over existing ones of the same names) and their
// leases, a few at a time.
func (n *Nodes) registerAll(ctx context.Context) error {
	sem := make(chan struct{}, 32)
	errs := make(chan error, len(n.names))
	var wg sync.WaitGroup
	for _, name := range n.names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := n.register(ctx, name); err != nil {
				errs <- fmt.Errorf("registering node %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (n *Nodes) register(ctx context.Context, name string) error {
	node := n.node(name)
	created, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = n.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return err
	}
	// Controllers (node IPAM) may write the new node at once: post the status on the latest.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		err := n.postStatus(ctx, created)
		if apierrors.IsConflict(err) {
			fresh, getErr := n.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if getErr != nil {
				return getErr
			}
			created = fresh
		}
		return err
	})
	if err != nil {
		return err
	}
	return n.renewLease(ctx, created)
}

// node is the Node object a simulated node registers, as a kubelet would.
func (n *Nodes) node(name string) *corev1.Node {
	labels := map[string]string{
		corev1.LabelHostname: name, corev1.LabelOSStable: "linux", corev1.LabelArchStable: "amd64",
		SimulatedLabel: "true",
	}
	for k, v := range n.opts.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(n.opts.CPU),
		corev1.ResourceMemory:           resource.MustParse(n.opts.Memory),
		corev1.ResourcePods:             resource.MustParse(n.opts.Pods),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{SimulatedLabel: simulatedNote}},
		Status: corev1.NodeStatus{
			Capacity: capacity, Allocatable: capacity.DeepCopy(),
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.nodeIP(name).String()}, {Type: corev1.NodeHostName, Address: name}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: name, SystemUUID: name, BootID: name, KernelVersion: "simulated", OSImage: "Keelson simulated node",
				ContainerRuntimeVersion: "simulated://1.0", KubeletVersion: kubeletVersion, OperatingSystem: "linux", Architecture: "amd64",
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		},
	}
}

// nodeIP is the node's address, in 172.30.0.0/16 by index.
func (n *Nodes) nodeIP(name string) netip.Addr {
	i := n.index[name] + 1
	return netip.AddrFrom4([4]byte{172, 30, byte(i >> 8), byte(i)})
}

// postStatus writes the node's status with fresh heartbeats: ready, no pressure.
func (n *Nodes) postStatus(ctx context.Context, node *corev1.Node) error {
	now := metav1.Now()
	update := node.DeepCopy()
	want := n.node(node.Name).Status
	update.Status.Capacity, update.Status.Allocatable = want.Capacity, want.Allocatable
	update.Status.Addresses, update.Status.NodeInfo, update.Status.DaemonEndpoints = want.Addresses, want.NodeInfo, want.DaemonEndpoints
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for i := range conds {
		conds[i].LastHeartbeatTime, conds[i].LastTransitionTime = now, now
		for _, old := range node.Status.Conditions {
			if old.Type == conds[i].Type && old.Status == conds[i].Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	update.Status.Conditions = conds
	_, err := n.client.CoreV1().Nodes().UpdateStatus(ctx, update, metav1.UpdateOptions{})
	return err
}

// renewLease renews (or creates) the node's Lease in kube-node-lease, owned by the node as the
// kubelet's is.
func (n *Nodes) renewLease(ctx context.Context, node *corev1.Node) error {
	leases := n.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	lease, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: node.Name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(node.Name), LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)), RenewTime: &now},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity, lease.Spec.RenewTime = ptr.To(node.Name), &now
	lease.Spec.LeaseDurationSeconds = ptr.To(int32(leaseDuration / time.Second))
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// heartbeat keeps one node alive: its lease renewed every renewInterval, its status posted
// when it is not ready (someone else marked it so) or every statusReportInterval.
func (n *Nodes) heartbeat(ctx context.Context, name string) {
	// Spread the nodes over the interval so that their renewals do not come in bursts.
	timer := time.NewTimer(time.Duration(rand.Int64N(int64(renewInterval))))
	defer timer.Stop()
	lastStatus := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		timer.Reset(renewInterval)
		node, err := n.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{ResourceVersion: "0"})
		if apierrors.IsNotFound(err) {
			// Deleted under us: register again, as a restarted kubelet would.
			err = n.register(ctx, name)
			lastStatus = time.Now()
		} else if err == nil {
			if !nodeReady(node) || time.Since(lastStatus) >= statusReportInterval {
				if err = n.postStatus(ctx, node); err == nil {
					lastStatus = time.Now()
				}
			}
			if err == nil {
				err = n.renewLease(ctx, node)
			}
		}
		if err != nil && ctx.Err() == nil {
			n.opts.Log.Info("node heartbeat failed", "node", name, "err", err)
		}
	}
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
