package api

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// nextEvent waits for one event on w.
func nextEvent(w watch.Interface) watch.Event {
	var ev watch.Event
	Eventually(w.ResultChan()).Should(Receive(&ev))
	return ev
}

func cmName(ev watch.Event) string {
	return ev.Object.(*corev1.ConfigMap).Name
}

var _ = Describe("Watch", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("delivers ADDED, MODIFIED and DELETED from a resourceVersion", func(ctx SpecContext) {
		list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=test"})
		Expect(err).NotTo(HaveOccurred())
		w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "app=test"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("w", map[string]string{"a": "1"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "w", types.MergePatchType, []byte(`{"data":{"a":"2"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "w", metav1.DeleteOptions{})).To(Succeed())
		Expect(nextEvent(w).Type).To(Equal(watch.Added))
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Modified))
		Expect(ev.Object.(*corev1.ConfigMap).Data["a"]).To(Equal("2"))
		ev = nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Deleted))
		Expect(cmName(ev)).To(Equal("w"))
	})

	It("resumes from the last resourceVersion without missing or repeating an event", func(ctx SpecContext) {
		list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		rv := list.ResourceVersion
		var seen []string
		for round := range 3 {
			w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, LabelSelector: "app=test"})
			Expect(err).NotTo(HaveOccurred())
			for i := range 3 {
				_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("r%d-%d", round, i), nil), metav1.CreateOptions{})
				Expect(err).NotTo(HaveOccurred())
			}
			// Read two of the three, then disconnect: the third must come on the next watch.
			for range 2 {
				ev := nextEvent(w)
				seen = append(seen, cmName(ev))
				rv = ev.Object.(*corev1.ConfigMap).ResourceVersion
			}
			w.Stop()
		}
		w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, LabelSelector: "app=test"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		for len(seen) < 9 {
			seen = append(seen, cmName(nextEvent(w)))
		}
		Consistently(w.ResultChan(), 200*time.Millisecond).ShouldNot(Receive())
		Expect(seen).To(Equal([]string{"r0-0", "r0-1", "r0-2", "r1-0", "r1-1", "r1-2", "r2-0", "r2-1", "r2-2"}))
	})

	It("shows an object entering and leaving a label selector as ADDED and DELETED", func(ctx SpecContext) {
		w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "tier=front", ResourceVersion: "0"})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("sel", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "sel", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"front"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(nextEvent(w).Type).To(Equal(watch.Added))
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "sel", types.MergePatchType, []byte(`{"metadata":{"labels":{"tier":"back"}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Deleted))
		// The object as the watcher last saw it, at the revision of the change that removed it.
		left := ev.Object.(*corev1.ConfigMap)
		Expect(left.Labels["tier"]).To(Equal("front"))
		current, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "sel", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(left.ResourceVersion).To(Equal(current.ResourceVersion))
	})

	It("sends the initial state and the initial-events-end bookmark with sendInitialEvents", func(ctx SpecContext) {
		for i := range 3 {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("i%d", i), nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=test",
			SendInitialEvents: ptr.To(true), AllowWatchBookmarks: true, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		var names []string
		for {
			ev := nextEvent(w)
			if ev.Type == watch.Bookmark {
				cm := ev.Object.(*corev1.ConfigMap)
				Expect(cm.Annotations).To(HaveKeyWithValue("k8s.io/initial-events-end", "true"))
				Expect(cm.ResourceVersion).NotTo(BeEmpty())
				break
			}
			Expect(ev.Type).To(Equal(watch.Added))
			names = append(names, cmName(ev))
		}
		Expect(names).To(ConsistOf("i0", "i1", "i2"))
	})

	It("refuses sendInitialEvents without resourceVersionMatch=NotOlderThan", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{SendInitialEvents: ptr.To(true), AllowWatchBookmarks: true})
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%v", err)
	})

	It("ends a watch after timeoutSeconds", func(ctx SpecContext) {
		w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{TimeoutSeconds: ptr.To[int64](1)})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		Eventually(w.ResultChan(), 5*time.Second).Should(BeClosed())
	})

	It("feeds shared informers that sync and then see every later change", func(ctx SpecContext) {
		for i := range 5 {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("inf%d", i), nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = "app=test" }))
		inf := factory.Core().V1().ConfigMaps().Informer()
		var mu sync.Mutex
		added, updated, deleted := map[string]bool{}, map[string]bool{}, map[string]bool{}
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) { mu.Lock(); added[o.(*corev1.ConfigMap).Name] = true; mu.Unlock() },
			UpdateFunc: func(_, o any) {
				mu.Lock()
				updated[o.(*corev1.ConfigMap).Name] = true
				mu.Unlock()
			},
			DeleteFunc: func(o any) {
				if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
					o = t.Obj
				}
				mu.Lock()
				deleted[o.(*corev1.ConfigMap).Name] = true
				mu.Unlock()
			},
		})
		Expect(err).NotTo(HaveOccurred())
		stop := make(chan struct{})
		defer close(stop)
		factory.Start(stop)
		Expect(cache.WaitForCacheSync(stop, inf.HasSynced)).To(BeTrue())
		Expect(inf.GetStore().ListKeys()).To(HaveLen(5))

		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("late", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "inf0", types.MergePatchType, []byte(`{"data":{"x":"y"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "inf1", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() bool {
			mu.Lock()
			defer mu.Unlock()
			return added["late"] && updated["inf0"] && deleted["inf1"]
		}).Should(BeTrue())
	})
})

var _ = Describe("List", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("paginates at one revision while writes happen, returning one consistent snapshot", func(ctx SpecContext) {
		var want []string
		for i := range 25 {
			name := fmt.Sprintf("pg%02d", i)
			want = append(want, name)
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(name, nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		var got []string
		// The label leaves out what controllers add to every namespace (kube-root-ca.crt).
		opts := metav1.ListOptions{Limit: 4, LabelSelector: "app=test"}
		firstRV := ""
		for page := 0; ; page++ {
			list, err := client.CoreV1().ConfigMaps(ns).List(ctx, opts)
			Expect(err).NotTo(HaveOccurred())
			Expect(len(list.Items)).To(BeNumerically("<=", 4))
			if firstRV == "" {
				firstRV = list.ResourceVersion
			}
			Expect(list.ResourceVersion).To(Equal(firstRV))
			for _, cm := range list.Items {
				got = append(got, cm.Name)
			}
			// Writes between pages must not show up in this list.
			_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("zz-late%d", page), nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			if page == 1 {
				Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "pg20", metav1.DeleteOptions{})).To(Succeed())
			}
			if list.Continue == "" {
				break
			}
			opts.Continue = list.Continue
		}
		Expect(got).To(Equal(want))
	})

	It("filters by field selector and refuses unsupported fields", func(ctx SpecContext) {
		for _, name := range []string{"f1", "f2"} {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(name, nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=f2"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("f2"))
		_, err = client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{FieldSelector: "data.foo=bar"})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`"data.foo" is not a known field selector: only "metadata.name", "metadata.namespace"`))
		_, err = client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.foo=bar"})
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`field label not supported: spec.foo`))
	})

	It("selects pods by spec.nodeName and status.phase", func(ctx SpecContext) {
		for i, node := range []string{"node-a", "node-b"} {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i)},
				Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
			_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-b,status.phase=Pending"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).To(HaveLen(1))
		Expect(list.Items[0].Name).To(Equal("p1"))
	})

	It("serves resourceVersion 0, exact and not-older-than reads", func(ctx SpecContext) {
		cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("v", map[string]string{"n": "1"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "v", types.MergePatchType, []byte(`{"data":{"n":"2"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		exact, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=test", ResourceVersion: cm.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
		Expect(err).NotTo(HaveOccurred())
		Expect(exact.ResourceVersion).To(Equal(cm.ResourceVersion))
		Expect(exact.Items).To(HaveLen(1))
		Expect(exact.Items[0].Data["n"]).To(Equal("1"))
		newer, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=test", ResourceVersion: cm.ResourceVersion, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
		Expect(err).NotTo(HaveOccurred())
		Expect(newer.Items[0].Data["n"]).To(Equal("2"))
		anyRV, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=test", ResourceVersion: "0"})
		Expect(err).NotTo(HaveOccurred())
		Expect(anyRV.Items).To(HaveLen(1))
		n, _ := strconv.Atoi(anyRV.ResourceVersion)
		Expect(n).To(BeNumerically(">", 0))
	})

	It("lists across namespaces sorted by namespace and name", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("b", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("a", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		list, err := client.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		var mine []string
		for _, cm := range list.Items {
			if cm.Namespace == ns && cm.Labels["app"] == "test" {
				mine = append(mine, cm.Name)
			}
		}
		Expect(mine).To(Equal([]string{"a", "b"}))
		Expect(sort.SliceIsSorted(list.Items, func(i, j int) bool {
			return list.Items[i].Namespace+"/"+list.Items[i].Name < list.Items[j].Namespace+"/"+list.Items[j].Name
		})).To(BeTrue())
	})
})
