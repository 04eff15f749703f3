// Command keelson-bench measures the cluster as clients see it: the API server's create, get,
// list and watch-delivery throughput with latency percentiles, and the scheduler's throughput
// onto simulated nodes. It starts a keelson server of its own (with its scheduler and controller
// manager) unless --kubeconfig names a cluster (so the same run can measure an upstream peer).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/controllers/controllermanager"
	"github.com/keelson/keelson/scheduler"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "cluster to measure (default: start a keelson server)")
	objects := flag.Int("objects", 2000, "objects to create")
	workers := flag.Int("workers", 16, "concurrent clients")
	lists := flag.Int("lists", 50, "full lists to time")
	suites := flag.String("suites", "api,scheduler,proxy,pods", "what to measure: a comma-separated list of api, scheduler, proxy and pods")
	podStarts := flag.Int("pod-starts", 100, "pods the pod start benchmark runs on the node")
	nodes := flag.Int("nodes", 1000, "simulated nodes for the scheduler benchmark")
	pods := flag.Int("pods", 10000, "pods for the scheduler benchmark")
	replicas := flag.Int("replicas", 1000, "replicas of the Deployment the scheduler benchmark rolls out")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run (server included when started here) to this file")
	flag.Parse()
	if addr := os.Getenv("KEELSON_BENCH_PPROF"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, bc, stop, err := cluster(ctx, *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer stop()
	cfg.QPS, cfg.Burst = -1, 0
	for _, suite := range strings.Split(*suites, ",") {
		switch suite {
		case "api":
			benchAPI(ctx, cfg, *objects, *workers, *lists)
		case "scheduler":
			benchScheduler(ctx, cfg, *nodes, *pods, *replicas, *workers)
		case "proxy":
			benchProxy(ctx)
		case "pods":
			benchPodStart(ctx, cfg, bc, *podStarts)
		default:
			fmt.Fprintf(os.Stderr, "unknown suite %q\n", suite)
			os.Exit(2)
		}
	}
}

// benchAPI measures the API server on ConfigMaps.
func benchAPI(ctx context.Context, cfg *rest.Config, objects, workers, lists int) {
	c := kubernetes.NewForConfigOrDie(cfg)
	ns := "bench-" + utilrand.String(5)
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	fmt.Println("API server")

	fmt.Printf("objects=%d workers=%d (ConfigMaps of ~1 KiB)\n\n", objects, workers)
	fmt.Printf("%-22s %10s %10s %10s %10s\n", "operation", "ops/s", "p50", "p99", "max")

	payload := map[string]string{"data": string(make([]byte, 1000))}
	for k := range payload {
		payload[k] = fmt.Sprintf("%01000d", 0)
	}

	// Watch delivery: one watcher sees every create; latency is from the create's response to
	// the event's arrival.
	list, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	must(err)
	w, err := c.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	must(err)
	var createdAt sync.Map
	var delivery []time.Duration
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added {
				continue
			}
			name := ev.Object.(*corev1.ConfigMap).Name
			if !strings.HasPrefix(name, "cm-") {
				continue // not ours: kube-root-ca.crt, published by the controller manager
			}
			now := time.Now()
			for {
				if t, ok := createdAt.Load(name); ok {
					delivery = append(delivery, now.Sub(t.(time.Time)))
					break
				}
				time.Sleep(time.Microsecond) // the create's response is still on its way
			}
			if len(delivery) == objects {
				return
			}
		}
	}()

	report("create", run(objects, workers, func(i int) error {
		name := fmt.Sprintf("cm-%06d", i)
		_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: payload}, metav1.CreateOptions{})
		createdAt.Store(name, time.Now())
		return err
	}))
	select {
	case <-watchDone:
		report("watch delivery", result{latencies: delivery})
	case <-time.After(30 * time.Second):
		fmt.Printf("watch delivery: only %d of %d events arrived\n", len(delivery), objects)
	}
	w.Stop()

	report("get", run(objects, workers, func(i int) error {
		_, err := c.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprintf("cm-%06d", i), metav1.GetOptions{})
		return err
	}))
	report("get (rv=0, cache)", run(objects, workers, func(i int) error {
		_, err := c.CoreV1().ConfigMaps(ns).Get(ctx, fmt.Sprintf("cm-%06d", i), metav1.GetOptions{ResourceVersion: "0"})
		return err
	}))
	report(fmt.Sprintf("list %d (consistent)", objects), run(lists, 1, func(int) error {
		_, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		return err
	}))
	report(fmt.Sprintf("list %d (rv=0)", objects), run(lists, 1, func(int) error {
		_, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		return err
	}))
	report("list 500/page (etcd)", run(lists, 1, func(int) error {
		_, err := c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{Limit: 500})
		return err
	}))
	report("update", run(objects, workers, func(i int) error {
		_, err := c.CoreV1().ConfigMaps(ns).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%06d", i)}, Data: map[string]string{"v": "2"}}, metav1.UpdateOptions{})
		return err
	}))
	report("delete", run(objects, workers, func(i int) error {
		return c.CoreV1().ConfigMaps(ns).Delete(ctx, fmt.Sprintf("cm-%06d", i), metav1.DeleteOptions{})
	}))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type result struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int64
}

// run calls op n times from workers goroutines and records each call's latency.
func run(n, workers int, op func(i int) error) result {
	var next atomic.Int64
	var errs atomic.Int64
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	begin := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := op(i); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintln(os.Stderr, "error:", err)
					}
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	return result{latencies: lat, elapsed: time.Since(begin), errors: errs.Load()}
}

func report(name string, r result) {
	sort.Slice(r.latencies, func(i, j int) bool { return r.latencies[i] < r.latencies[j] })
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[int(p*float64(len(r.latencies)-1))]
	}
	rate := "-"
	if r.elapsed > 0 {
		rate = fmt.Sprintf("%.0f", float64(len(r.latencies))/r.elapsed.Seconds())
	}
	line := fmt.Sprintf("%-22s %10s %10s %10s %10s", name, rate, round(pct(0.5)), round(pct(0.99)), round(pct(1)))
	if r.errors > 0 {
		line += fmt.Sprintf("  (%d errors)", r.errors)
	}
	fmt.Println(line)
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// benchCluster is what the pod benchmark needs of a cluster started here to add a node to it.
type benchCluster struct {
	dataDir string
	caPEM   []byte
}

// cluster returns a client config: the named cluster, or a keelson server started here (its
// node agent is added by the pod benchmark).
func cluster(ctx context.Context, kubeconfig string) (*rest.Config, *benchCluster, func(), error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		return cfg, nil, func() {}, err
	}
	dir, err := os.MkdirTemp("", "keelson-bench-")
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	started := make(chan *apiserver.Server, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- apiserver.Run(ctx, apiserver.Options{DataDir: dir, BindAddress: "0.0.0.0", Port: 0,
			Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, started)
	}()
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait(); <-errc; purgeNode(dir); os.RemoveAll(dir) }
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	select {
	case s := <-started:
		cfg, err := clientcmd.BuildConfigFromFlags("", s.KubeconfigPath)
		if err != nil {
			return nil, nil, nil, err
		}
		wg.Go(func() {
			_ = controllermanager.Run(ctx, cfg, controllermanager.Options{RootCA: s.CAPEM(), ClusterCIDR: benchClusterCIDR, Log: quiet})
		})
		wg.Go(func() { _ = scheduler.Run(ctx, cfg, scheduler.Options{Log: quiet}) })
		return cfg, &benchCluster{dataDir: dir, caPEM: s.CAPEM()}, stop, nil
	case err := <-errc:
		return nil, nil, nil, err
	}
}
