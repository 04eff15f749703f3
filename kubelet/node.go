package kubelet

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/ptr"
)

// The node's heartbeats, upstream's defaults: the Lease is renewed every 10 s and lasts 40 s;
// the status is written when it changes and at least every 5 minutes.
const (
	leaseDuration        = 40
	leaseRenewInterval   = 10 * time.Second
	statusUpdateInterval = 10 * time.Second
	statusReportInterval = 5 * time.Minute
	maxPods              = 110
	kubeletPort          = 10250
)

// registerNode creates the Node, or brings an existing one's labels and status up to date.
func (k *Kubelet) registerNode(ctx context.Context) error {
	want := k.nodeObject()
	return wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := k.client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			k.log.Info("registered node", "node", want.Name)
			return true, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			k.log.Warn("registering node", "err", err)
			return false, nil
		}
		existing, err := k.client.CoreV1().Nodes().Get(ctx, want.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		changed := false
		if existing.Labels == nil {
			existing.Labels = map[string]string{}
		}
		for key, v := range want.Labels {
			if existing.Labels[key] != v {
				existing.Labels[key] = v
				changed = true
			}
		}
		if changed {
			if existing, err = k.client.CoreV1().Nodes().Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
				return false, nil
			}
		}
		existing.Status = want.Status
		_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, existing, metav1.UpdateOptions{})
		return err == nil, nil
	})
}

// nodeObject is the Node as this kubelet registers it.
func (k *Kubelet) nodeObject() *corev1.Node {
	hostname, _ := os.Hostname()
	labels := map[string]string{
		corev1.LabelHostname:         k.opts.NodeName,
		corev1.LabelOSStable:         runtime.GOOS,
		corev1.LabelArchStable:       runtime.GOARCH,
		"beta.kubernetes.io/os":      runtime.GOOS,
		"beta.kubernetes.io/arch":    runtime.GOARCH,
		"node.kubernetes.io/keelson": "true",
	}
	for key, v := range k.opts.Labels {
		labels[key] = v
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.opts.NodeName, Labels: labels,
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
	}
	node.Status = k.nodeStatus(hostname, nil)
	return node
}

// nodeStatus is the status the node reports now; old is the last one written (nil at first),
// whose transition times are kept for conditions that did not change.
func (k *Kubelet) nodeStatus(hostname string, old *corev1.NodeStatus) corev1.NodeStatus {
	capacity := hostCapacity(k.opts.RootDir)
	now := metav1.Now()
	status := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       "",
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: k.opts.NodeIP.String()},
			{Type: corev1.NodeHostName, Address: hostname},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(k.apiPort)}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID: readTrimmed("/etc/machine-id"), SystemUUID: readTrimmed("/sys/class/dmi/id/product_uuid"),
			BootID: readTrimmed("/proc/sys/kernel/random/boot_id"), KernelVersion: kernelVersion(), OSImage: osImage(),
			ContainerRuntimeVersion: k.runtimeVersion, KubeletVersion: Version,
			OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
		},
	}
	conditions := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for i := range conditions {
		c := &conditions[i]
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		if old == nil {
			continue
		}
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	status.Conditions = conditions
	if old != nil {
		status.Images = old.Images
	}
	return status
}

// keepNodeStatus writes the node's status when it changes, and at least every five minutes.
func (k *Kubelet) keepNodeStatus(ctx context.Context) {
	hostname, _ := os.Hostname()
	lastReport := time.Now()
	t := time.NewTicker(statusUpdateInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.opts.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			// Deleted from under us: register again, as upstream's kubelet does.
			if err := k.registerNode(ctx); err != nil {
				return
			}
			continue
		}
		if err != nil {
			continue
		}
		status := k.nodeStatus(hostname, &node.Status)
		status.Images = k.nodeImages(ctx)
		if !statusChanged(&node.Status, &status) && time.Since(lastReport) < statusReportInterval {
			continue
		}
		node.Status = status
		if _, err := k.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err == nil {
			lastReport = time.Now()
		}
	}
}

// statusChanged tells whether a node status differs from the last one in more than heartbeat times.
func statusChanged(old, cur *corev1.NodeStatus) bool {
	strip := func(s *corev1.NodeStatus) string {
		c := s.DeepCopy()
		for i := range c.Conditions {
			c.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		b, _ := json.Marshal(c)
		return string(b)
	}
	return strip(old) != strip(cur)
}

// keepLease creates and renews the node's Lease in kube-node-lease.
func (k *Kubelet) keepLease(ctx context.Context) {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renew := func() {
		now := metav1.NewMicroTime(time.Now())
		lease, err := leases.Get(ctx, k.opts.NodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.opts.NodeName, Namespace: corev1.NamespaceNodeLease}}
			if node, err := k.client.CoreV1().Nodes().Get(ctx, k.opts.NodeName, metav1.GetOptions{}); err == nil {
				lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
			}
			lease.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To(k.opts.NodeName), LeaseDurationSeconds: ptr.To[int32](leaseDuration), RenewTime: &now}
			_, _ = leases.Create(ctx, lease, metav1.CreateOptions{})
			return
		}
		if err != nil {
			return
		}
		lease.Spec.HolderIdentity = ptr.To(k.opts.NodeName)
		lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDuration)
		lease.Spec.RenewTime = &now
		_, _ = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	renew()
	t := time.NewTicker(leaseRenewInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			renew()
		}
	}
}

// waitForPodCIDR waits for the node's podCIDR and writes the pod network's CNI configuration for it.
func (k *Kubelet) waitForPodCIDR(ctx context.Context) error {
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.opts.NodeName, metav1.GetOptions{})
		if err != nil || node.Spec.PodCIDR == "" {
			return false, nil
		}
		k.podCIDR = node.Spec.PodCIDR
		return true, writeCNIConfig(k.opts.CNIConfDir, filepath.Join(k.opts.RootDir, "cni-ipam"), k.podCIDR)
	})
}

// writeCNIConfig writes the pod network: a bridge with host-local addresses from the podCIDR,
// and port mappings for hostPorts.
func writeCNIConfig(dir, ipamDir, podCIDR string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "keelson",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "keelson0", "isGateway": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type": "host-local", "dataDir": ipamDir,
					"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	b, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".10-keelson.conflist")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "10-keelson.conflist"))
}

// hostCapacity is what the host offers pods: its CPUs, memory, the disk under root, and
// upstream's default of 110 pods.
func hostCapacity(root string) corev1.ResourceList {
	list := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(maxPods, resource.DecimalSI),
		"hugepages-1Gi":       *resource.NewQuantity(0, resource.BinarySI),
		"hugepages-2Mi":       *resource.NewQuantity(0, resource.BinarySI),
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(root, &fs) == nil {
		list[corev1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*int64(fs.Bsize), resource.BinarySI)
	}
	return list
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func kernelVersion() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return ""
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// osImage is the host's PRETTY_NAME from os-release.
func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return v
		}
	}
	return runtime.GOOS
}

// nodeImages lists the runtime's images for the node status, largest first, at most 50 as upstream.
func (k *Kubelet) nodeImages(ctx context.Context) []corev1.ContainerImage {
	resp, err := k.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil
	}
	var out []corev1.ContainerImage
	for _, img := range resp.Images {
		names := append(append([]string{}, img.RepoDigests...), img.RepoTags...)
		if len(names) == 0 {
			continue
		}
		out = append(out, corev1.ContainerImage{Names: names, SizeBytes: int64(img.Size)})
	}
	sortImages(out)
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}
