package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keelson/keelson/simulator"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// benchScheduler measures the scheduler onto simulated nodes: the rate at which it binds a
// burst of pods, the latency from each pod's creation to its binding, and how long a large
// Deployment takes to be fully Running.
func benchScheduler(ctx context.Context, cfg *rest.Config, nodeCount, podCount, replicas, workers int) {
	c := kubernetes.NewForConfigOrDie(cfg)
	fmt.Printf("\nScheduler: %d simulated nodes (32 CPU, 256Gi, 110 pods each)\n\n", nodeCount)
	simCtx, stopNodes := context.WithCancel(ctx)
	prefix := "bench-" + utilrand.String(4) + "-"
	begin := time.Now()
	nodes, err := simulator.Start(simCtx, cfg, simulator.Options{Count: nodeCount, Prefix: prefix,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	must(err)
	fmt.Printf("%-34s %s\n", "register nodes", round(time.Since(begin)))
	defer func() {
		stopNodes()
		nodes.Wait()
		_ = c.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: simulator.SimulatedLabel})
	}()

	ns := "bench-sched-" + utilrand.String(5)
	_, err = c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	defer c.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	waitForServiceAccount(ctx, c, ns)

	// A burst of pods: created as fast as the clients go, bound as fast as the scheduler goes. An
	// informer sees the bindings (and resumes by itself if the server ends its watch).
	var createdAt sync.Map
	var mu sync.Mutex
	var latencies []time.Duration
	var lastBound time.Time
	seen := map[string]bool{}
	watchDone := make(chan struct{})
	observe := func(o any) {
		p, ok := o.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" || seen[p.Name] {
			return
		}
		now := time.Now()
		seen[p.Name] = true
		for {
			if t, ok := createdAt.Load(p.Name); ok {
				mu.Lock()
				latencies = append(latencies, now.Sub(t.(time.Time)))
				lastBound = now
				mu.Unlock()
				break
			}
			time.Sleep(time.Microsecond) // the create's response is still on its way
		}
		if len(seen) == podCount {
			close(watchDone)
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(c, 0, informers.WithNamespace(ns))
	_, err = factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: observe, UpdateFunc: func(_, o any) { observe(o) }})
	must(err)
	informerCtx, stopInformer := context.WithCancel(ctx)
	factory.Start(informerCtx.Done())
	factory.WaitForCacheSync(informerCtx.Done())
	template := corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")}}}}}
	start := time.Now()
	created := run(podCount, workers, func(i int) error {
		name := fmt.Sprintf("pod-%06d", i)
		createdAt.Store(name, time.Now())
		_, err := c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: template}, metav1.CreateOptions{})
		return err
	})
	report(fmt.Sprintf("create %d pods", podCount), created)
	select {
	case <-watchDone:
	case <-time.After(10 * time.Minute):
		fmt.Printf("only %d of %d pods were bound in 10 minutes\n", len(seen), podCount)
	}
	stopInformer()
	factory.Shutdown()
	mu.Lock()
	elapsed := lastBound.Sub(start)
	report(fmt.Sprintf("schedule %d pods (create→bound)", len(latencies)), result{latencies: latencies, elapsed: elapsed})
	mu.Unlock()
	fmt.Printf("%-34s %s\n", "first create to last binding", round(elapsed))
	must(c.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}, metav1.ListOptions{}))

	// A Deployment, from creation until every replica runs and is ready.
	labels := map[string]string{"app": "bench"}
	start = time.Now()
	_, err = c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(replicas)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: template}},
	}, metav1.CreateOptions{})
	must(err)
	for {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "bench", metav1.GetOptions{})
		must(err)
		if d.Status.ReadyReplicas == int32(replicas) && d.Status.AvailableReplicas == int32(replicas) {
			break
		}
		if time.Since(start) > 10*time.Minute {
			fmt.Printf("deployment: only %d of %d replicas ready after 10 minutes\n", d.Status.ReadyReplicas, replicas)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("%-34s %s\n", fmt.Sprintf("deployment of %d replicas running", replicas), round(time.Since(start)))
}

// waitForServiceAccount waits for the namespace's default ServiceAccount, which pods need.
func waitForServiceAccount(ctx context.Context, c kubernetes.Interface, ns string) {
	for range 200 {
		if _, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
