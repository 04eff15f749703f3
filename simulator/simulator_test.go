package simulator_test

import (
	"context"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/simulator"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

func TestSimulatedNodes(t *testing.T) {
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes, err := simulator.Start(ctx, cfg, simulator.Options{Count: 3, Prefix: "sim-", CPU: "4"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("nodes are registered ready, with capacity, a lease and the simulated label", func(t *testing.T) {
		for _, name := range nodes.Names() {
			node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if node.Labels[simulator.SimulatedLabel] != "true" || node.Labels[corev1.LabelHostname] != name {
				t.Errorf("labels %v", node.Labels)
			}
			if len(node.Spec.Taints) != 0 {
				t.Errorf("taints %v", node.Spec.Taints)
			}
			if got := node.Status.Allocatable.Cpu().String(); got != "4" {
				t.Errorf("allocatable cpu %s", got)
			}
			ready := false
			for _, c := range node.Status.Conditions {
				ready = ready || c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue
			}
			if !ready {
				t.Errorf("node %s not ready: %v", name, node.Status.Conditions)
			}
			lease, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if *lease.Spec.HolderIdentity != name || lease.Spec.RenewTime == nil || lease.OwnerReferences[0].UID != node.UID {
				t.Errorf("lease %+v", lease.Spec)
			}
		}
	})

	pod := func(name string, policy corev1.RestartPolicy, annotations map[string]string) *corev1.Pod {
		p, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
			Spec: corev1.PodSpec{NodeName: "sim-1", RestartPolicy: policy,
				InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
				Containers:     []corev1.Container{{Name: "c", Image: "busybox"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	waitFor := func(name string, ok func(*corev1.Pod) bool) *corev1.Pod {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err == nil && ok(p) {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("pod %s: %v %+v", name, err, p.Status)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("a pod that always restarts runs and is ready", func(t *testing.T) {
		pod("web", corev1.RestartPolicyAlways, nil)
		p := waitFor("web", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		if p.Status.PodIP == "" || p.Status.HostIP != "172.30.0.2" || p.Status.StartTime == nil {
			t.Errorf("status %+v", p.Status)
		}
		if !p.Status.ContainerStatuses[0].Ready || p.Status.ContainerStatuses[0].State.Running == nil {
			t.Errorf("container %+v", p.Status.ContainerStatuses)
		}
		if p.Status.InitContainerStatuses[0].State.Terminated == nil {
			t.Errorf("init container %+v", p.Status.InitContainerStatuses)
		}
	})

	t.Run("pods that run to completion succeed or fail by their exit code", func(t *testing.T) {
		pod("ok", corev1.RestartPolicyNever, map[string]string{simulator.DurationAnnotation: "100ms"})
		pod("bad", corev1.RestartPolicyNever, map[string]string{simulator.DurationAnnotation: "100ms", simulator.ExitCodeAnnotation: "3"})
		waitFor("ok", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
		p := waitFor("bad", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
		if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 3 {
			t.Errorf("container %+v", p.Status.ContainerStatuses)
		}
	})

	t.Run("a deleted pod is removed once its containers stop", func(t *testing.T) {
		if err := client.CoreV1().Pods("default").Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(30))}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("pod not removed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
