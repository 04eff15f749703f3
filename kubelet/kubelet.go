// Package kubelet is the node agent: it registers its Node and keeps its Lease fresh, and runs
// the pods bound to the node through a container runtime's CRI (containerd here), reporting
// their status as upstream's kubelet does.
//
// Each pod has a worker that brings the runtime in line with the pod (sandbox, init containers,
// containers, restarts with back-off, termination) and writes the status it sees. Workers are
// woken by changes to their pod and by a relist of the runtime every second, which is how an
// exited container is noticed.
package kubelet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/keelson/keelson/kubelet/containerd"
)

// resyncEvery is how many relists (one a second) pass between syncs of every pod, changed or not.
const resyncEvery = 10

// Version is the kubelet version the node reports.
const Version = "v1.37.2"

// Options configure a kubelet.
type Options struct {
	// NodeName is the Node this kubelet registers and runs pods for.
	NodeName string
	// NodeIP is the node's InternalIP; pods' hostIP.
	NodeIP net.IP
	// RuntimeSocket is the CRI endpoint, a unix socket path.
	RuntimeSocket string
	// RootDir holds the pods' volumes, hosts files and container logs.
	RootDir string
	// CNIConfDir is where the pod network's CNI configuration is written once the Node has a
	// podCIDR; the runtime reads it from there.
	CNIConfDir string
	// ClusterDNS and ClusterDomain go into pods' resolv.conf under the ClusterFirst policy.
	ClusterDNS    []string
	ClusterDomain string
	// Labels are added to the Node's labels.
	Labels map[string]string
	// Port is the kubelet API's port (upstream's 10250 when zero; -1 picks a free one).
	Port int
	// ServingCertificate is the kubelet API's certificate; nil makes a self-signed one for the
	// node's name and IP under RootDir/pki, as upstream does.
	ServingCertificate *tls.Certificate
	// ClientCA is the PEM of the CA that signs the certificates of the API's clients (the
	// cluster CA). Without it the kubelet serves no API.
	ClientCA []byte
	Log      *slog.Logger
}

// Kubelet runs the pods bound to one node.
type Kubelet struct {
	opts     Options
	client   kubernetes.Interface
	runtime  runtimeapi.RuntimeServiceClient
	images   runtimeapi.ImageServiceClient
	recorder record.EventRecorder
	log      *slog.Logger

	pods     corelisters.PodLister
	services corelisters.ServiceLister
	configs  corelisters.ConfigMapLister
	secrets  corelisters.SecretLister

	runtimeVersion string
	podCIDR        string
	// apiPort is the port the kubelet API listens on, as the Node reports it.
	apiPort int

	mu      sync.Mutex // guards workers and lastRelist
	workers map[types.UID]*podWorker
	// lastRelist is each pod's runtime state at the last relist, to wake only changed pods.
	lastRelist map[types.UID]string
	relists    int

	tokensMu sync.Mutex // guards tokens
	tokens   map[string]cachedToken
}

// Run registers the node and runs its pods until ctx ends. Containers keep running when it
// returns: a kubelet that starts again adopts them.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	if opts.NodeName == "" {
		return errors.New("kubelet: no node name")
	}
	if opts.ClusterDomain == "" {
		opts.ClusterDomain = "cluster.local"
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(opts.RootDir, "pods"), 0o750); err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubelet/" + Version + " (linux/amd64) keelson"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	conn, err := containerd.Dial(ctx, opts.RuntimeSocket)
	if err != nil {
		return fmt.Errorf("kubelet: container runtime: %w", err)
	}
	defer conn.Close()
	k := &Kubelet{opts: opts, client: client, runtime: runtimeapi.NewRuntimeServiceClient(conn), images: runtimeapi.NewImageServiceClient(conn),
		log: opts.Log, workers: map[types.UID]*podWorker{}, tokens: map[string]cachedToken{}}
	v, err := k.runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return fmt.Errorf("kubelet: container runtime at %s: %w", opts.RuntimeSocket, err)
	}
	k.runtimeVersion = v.RuntimeName + "://" + v.RuntimeVersion

	// The API listens before the Node is registered, so that the port it reports is taken.
	apiListener, err := k.listenAPI()
	if err != nil {
		return err
	}
	if apiListener != nil {
		defer apiListener.Close()
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	k.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: opts.NodeName})

	if err := k.registerNode(ctx); err != nil {
		return err
	}
	go k.keepLease(ctx)
	go k.keepNodeStatus(ctx)
	if err := k.waitForPodCIDR(ctx); err != nil {
		return err
	}

	onNode := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", opts.NodeName).String()
	}))
	all := informers.NewSharedInformerFactory(client, 0)
	podInformer := onNode.Core().V1().Pods()
	k.pods = podInformer.Lister()
	k.services = all.Core().V1().Services().Lister()
	k.configs = all.Core().V1().ConfigMaps().Lister()
	k.secrets = all.Core().V1().Secrets().Lister()
	wake := func(o any) {
		if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = t.Obj
		}
		if p, ok := o.(*corev1.Pod); ok {
			k.workerFor(ctx, p.UID, p.Namespace, p.Name).wake()
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: wake, DeleteFunc: wake,
		UpdateFunc: func(old, o any) {
			// The kubelet's own status writes do not call for a sync; the periodic relist
			// picks up other writers' conditions.
			if specChanged(old.(*corev1.Pod), o.(*corev1.Pod)) {
				wake(o)
			}
		},
	}); err != nil {
		return err
	}
	onNode.Start(ctx.Done())
	all.Start(ctx.Done())
	for _, synced := range []map[reflect.Type]bool{onNode.WaitForCacheSync(ctx.Done()), all.WaitForCacheSync(ctx.Done())} {
		for t, ok := range synced {
			if !ok {
				return fmt.Errorf("kubelet: %v cache did not sync", t)
			}
		}
	}
	if apiListener != nil {
		api, err := k.apiServer()
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		apiCtx, stopAPI := context.WithCancel(ctx)
		defer stopAPI()
		wg.Go(func() {
			if err := api.Serve(apiCtx, apiListener); err != nil {
				k.log.Error("kubelet API stopped", "err", err)
			}
		})
	}
	k.log.Info("kubelet running", "node", opts.NodeName, "runtime", k.runtimeVersion, "podCIDR", k.podCIDR, "port", k.apiPort)
	if err := k.adoptOrphans(ctx); err != nil {
		k.log.Warn("cleaning up containers of pods that are gone", "err", err)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			k.mu.Lock()
			for _, w := range k.workers {
				w.stop()
			}
			k.mu.Unlock()
			return ctx.Err()
		case <-tick.C:
			k.relist(ctx)
		}
	}
}

// workerFor is the pod's worker, started on first use.
func (k *Kubelet) workerFor(ctx context.Context, uid types.UID, ns, name string) *podWorker {
	k.mu.Lock()
	defer k.mu.Unlock()
	w, ok := k.workers[uid]
	if !ok {
		w = newPodWorker(k, uid, ns, name)
		k.workers[uid] = w
		go w.run(ctx)
	}
	return w
}

// forget drops a worker whose pod is gone and cleaned up.
func (k *Kubelet) forget(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.workers, uid)
}

// relist reads every sandbox and container from the runtime once and wakes the workers of the
// pods whose runtime state changed since the last relist, as upstream's PLEG does (an exited
// container is noticed this way); every resyncEvery relists it wakes them all. Sandboxes of
// pods the API no longer has (deleted while this kubelet was away) get a worker too, which
// cleans them up.
func (k *Kubelet) relist(ctx context.Context) {
	k.relists++
	all := k.relists%resyncEvery == 0
	sbs, err := k.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		all = true
	}
	cs, err := k.runtime.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		all = true
	}
	states := map[types.UID][]string{}
	meta := map[types.UID]*runtimeapi.PodSandboxMetadata{}
	if sbs != nil {
		for _, sb := range sbs.Items {
			if sb.Metadata == nil {
				continue
			}
			uid := types.UID(sb.Metadata.Uid)
			meta[uid] = sb.Metadata
			states[uid] = append(states[uid], sb.Id+"="+sb.State.String())
		}
	}
	if cs != nil {
		for _, c := range cs.Containers {
			if uid := types.UID(c.Labels[labelPodUID]); uid != "" {
				states[uid] = append(states[uid], c.Id+"="+c.State.String())
			}
		}
	}
	seen := make(map[types.UID]string, len(states))
	for uid, st := range states {
		sort.Strings(st)
		seen[uid] = strings.Join(st, ",")
	}
	k.mu.Lock()
	var wake []*podWorker
	for uid, w := range k.workers {
		if all || seen[uid] != k.lastRelist[uid] {
			wake = append(wake, w)
		}
	}
	k.lastRelist = seen
	k.mu.Unlock()
	for _, w := range wake {
		w.wake()
	}
	for uid, m := range meta {
		k.workerFor(ctx, uid, m.Namespace, m.Name)
	}
}

// adoptOrphans starts workers for the sandboxes the runtime has from before this start, so that
// running pods are adopted and those of deleted pods cleaned up.
func (k *Kubelet) adoptOrphans(ctx context.Context) error {
	resp, err := k.runtime.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	for _, sb := range resp.Items {
		if sb.Metadata != nil {
			k.workerFor(ctx, types.UID(sb.Metadata.Uid), sb.Metadata.Namespace, sb.Metadata.Name)
		}
	}
	return nil
}

// specChanged tells whether a pod changed in more than its status.
func specChanged(old, cur *corev1.Pod) bool {
	return old.UID != cur.UID || old.Generation != cur.Generation || !apiequality.Semantic.DeepEqual(old.Spec, cur.Spec) ||
		!old.DeletionTimestamp.Equal(cur.DeletionTimestamp) || !apiequality.Semantic.DeepEqual(old.Labels, cur.Labels) ||
		!apiequality.Semantic.DeepEqual(old.Annotations, cur.Annotations)
}
