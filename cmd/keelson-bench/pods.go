package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/keelson/keelson/agent"
	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/kubelet/containerd"
	"github.com/keelson/keelson/kubelet/images/build"
	"github.com/keelson/keelson/proxy"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// benchClusterCIDR is the pod range of the cluster the benchmark starts.
const benchClusterCIDR = "10.244.0.0/16"

// benchPodStart runs a real node (the agent: containerd, kubelet, proxy, DNS) beside the
// started control plane and measures, for pods created at once, the time from each create to
// the pod being Running and to it being Ready (a readiness probe that passes at once).
func benchPodStart(ctx context.Context, cfg *rest.Config, bc *benchCluster, count int) {
	fmt.Printf("\nPod start on a real node (containerd, busybox; %d pods created at once)\n\n", count)
	switch {
	case bc == nil:
		fmt.Println("skipped: needs a cluster started here (no --kubeconfig)")
		return
	case os.Getuid() != 0:
		fmt.Println("skipped: needs root")
		return
	}
	for _, cmd := range []string{"containerd", "runc", "nft"} {
		if _, err := exec.LookPath(cmd); err != nil {
			fmt.Printf("skipped: %s is not installed (make deps installs it)\n", cmd)
			return
		}
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := build.Build(ctx, build.Options{Dir: agent.ImagesDir(bc.dataDir), Log: quiet}); err != nil {
		fmt.Fprintln(os.Stderr, "building images:", err)
		return
	}
	nodeCtx, stopNode := context.WithCancel(ctx)
	nodeDone := make(chan error, 1)
	go func() {
		nodeDone <- agent.Run(nodeCtx, cfg, agent.Options{DataDir: bc.dataDir, NodeName: "bench-node", ClientCA: bc.caPEM, KubeletPort: -1,
			ClusterCIDR: benchClusterCIDR, ServiceCIDR: "10.96.0.0/12", ClusterDNS: "10.96.0.10", Log: quiet})
	}()
	defer func() { stopNode(); <-nodeDone }()
	c := kubernetes.NewForConfigOrDie(cfg)
	begin := time.Now()
	for {
		n, err := c.CoreV1().Nodes().Get(ctx, "bench-node", metav1.GetOptions{})
		if err == nil && n.Spec.PodCIDR != "" && nodeReady(n) {
			break
		}
		select {
		case err := <-nodeDone:
			fmt.Fprintln(os.Stderr, "node agent:", err)
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	fmt.Printf("%-34s %s\n", "node Ready after start", round(time.Since(begin)))

	ns := "bench-pods-" + utilrand.String(5)
	_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	waitForServiceAccount(ctx, c, ns)

	var mu sync.Mutex
	created := map[string]time.Time{}
	running := map[string]time.Duration{}
	ready := map[string]time.Duration{}
	allReady := make(chan struct{})
	observe := func(o any) {
		p, ok := o.(*corev1.Pod)
		if !ok {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		t, ok := created[p.Name]
		if !ok {
			return
		}
		if _, seen := running[p.Name]; !seen && p.Status.Phase == corev1.PodRunning {
			running[p.Name] = now.Sub(t)
		}
		if _, seen := ready[p.Name]; !seen && manager.PodReady(p) {
			ready[p.Name] = now.Sub(t)
			if len(ready) == count {
				close(allReady)
			}
		}
	}
	inf := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	pods := inf.Core().V1().Pods().Informer()
	_, _ = pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }})
	infCtx, stopInf := context.WithCancel(ctx)
	defer stopInf()
	inf.Start(infCtx.Done())
	inf.WaitForCacheSync(infCtx.Done())

	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range count {
		name := fmt.Sprintf("p-%03d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers: []corev1.Container{{Name: "c", Image: "busybox:1.37", Command: []string{"sleep", "3600"},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 1}}},
			}}
			mu.Lock()
			created[name] = time.Now()
			mu.Unlock()
			if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				fmt.Fprintln(os.Stderr, "create:", err)
			}
		}()
	}
	wg.Wait()
	select {
	case <-allReady:
	case <-time.After(5 * time.Minute):
		fmt.Println("not all pods became Ready within 5 minutes")
	}
	elapsed := time.Since(start)
	mu.Lock()
	fmt.Printf("%-34s %s (%.1f pods/s)\n", fmt.Sprintf("%d pods Ready", len(ready)), round(elapsed), float64(len(ready))/elapsed.Seconds())
	fmt.Printf("%-34s %10s %10s %10s\n", "", "p50", "p99", "max")
	for _, row := range []struct {
		name string
		m    map[string]time.Duration
	}{{"create → Running", running}, {"create → Ready", ready}} {
		var ds []time.Duration
		for _, d := range row.m {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		if len(ds) == 0 {
			continue
		}
		at := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1))] }
		fmt.Printf("%-34s %10s %10s %10s\n", row.name, round(at(0.5)), round(at(0.99)), round(at(1)))
	}
	mu.Unlock()
	_ = c.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil && len(list.Items) == 0 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// purgeNode kills what a benchmark node's containerd left running and unmounts its pods' mounts.
func purgeNode(dataDir string) {
	containerd.KillShims(filepath.Join(agent.Dir(dataDir), "containerd", "containerd.sock"))
	_ = containerd.UnmountUnder(dataDir)
	_ = exec.Command("nft", "delete", "table", "ip", proxy.DefaultTableName).Run()
}
