package kubelet

import (
	"context"
	"sort"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels the kubelet puts on sandboxes and containers, upstream's, by which it finds them again.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// podState is what the runtime has of one pod.
type podState struct {
	// sandboxes, newest first.
	sandboxes []*runtimeapi.PodSandbox
	// containers, newest first, with their statuses.
	containers []*runtimeapi.Container
	statuses   map[string]*runtimeapi.ContainerStatus
	// sandboxStatus is the status of the newest sandbox, if any.
	sandboxStatus *runtimeapi.PodSandboxStatus
}

// observe reads the pod's sandboxes and containers from the runtime.
func (k *Kubelet) observe(ctx context.Context, uid types.UID) (*podState, error) {
	filter := map[string]string{labelPodUID: string(uid)}
	sbs, err := k.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: filter}})
	if err != nil {
		return nil, err
	}
	cs, err := k.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: filter}})
	if err != nil {
		return nil, err
	}
	st := &podState{sandboxes: sbs.Items, containers: cs.Containers, statuses: map[string]*runtimeapi.ContainerStatus{}}
	sort.Slice(st.sandboxes, func(i, j int) bool { return st.sandboxes[i].CreatedAt > st.sandboxes[j].CreatedAt })
	sort.Slice(st.containers, func(i, j int) bool { return st.containers[i].CreatedAt > st.containers[j].CreatedAt })
	for _, c := range st.containers {
		resp, err := k.runtime.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			continue
		}
		st.statuses[c.Id] = resp.Status
	}
	if len(st.sandboxes) > 0 {
		resp, err := k.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: st.sandboxes[0].Id})
		if err == nil {
			st.sandboxStatus = resp.Status
		}
	}
	return st, nil
}

// readySandbox is the newest sandbox if it is ready.
func (s *podState) readySandbox() *runtimeapi.PodSandbox {
	if len(s.sandboxes) > 0 && s.sandboxes[0].State == runtimeapi.PodSandboxState_SANDBOX_READY {
		return s.sandboxes[0]
	}
	return nil
}

// latest is the status of the newest container of the given name in the given sandbox (any
// sandbox when sandboxID is empty), or nil.
func (s *podState) latest(name, sandboxID string) *runtimeapi.ContainerStatus {
	for _, c := range s.containers {
		if c.Metadata != nil && c.Metadata.Name == name && (sandboxID == "" || c.PodSandboxId == sandboxID) {
			if st := s.statuses[c.Id]; st != nil {
				return st
			}
		}
	}
	return nil
}

// previous is the status of the container of the given name before the newest, or nil.
func (s *podState) previous(name string) *runtimeapi.ContainerStatus {
	seen := false
	for _, c := range s.containers {
		if c.Metadata == nil || c.Metadata.Name != name {
			continue
		}
		if seen {
			return s.statuses[c.Id]
		}
		seen = true
	}
	return nil
}

// attempts counts the containers of a name the runtime still has: the next one's attempt number.
func (s *podState) attempts(name string) uint32 {
	var n uint32
	for _, c := range s.containers {
		if c.Metadata != nil && c.Metadata.Name == name && c.Metadata.Attempt+1 > n {
			n = c.Metadata.Attempt + 1
		}
	}
	return n
}

// podIPs are the addresses of the newest sandbox's network.
func (s *podState) podIPs() []string {
	if s.sandboxStatus == nil || s.sandboxStatus.Network == nil || s.sandboxStatus.Network.Ip == "" {
		return nil
	}
	ips := []string{s.sandboxStatus.Network.Ip}
	for _, ip := range s.sandboxStatus.Network.AdditionalIps {
		ips = append(ips, ip.Ip)
	}
	return ips
}
