package api

import (
	"context"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
)

// These specs restart the server, so they run only against a Keelson server this suite started,
// one at a time.
var _ = Describe("Restarts", Serial, func() {
	BeforeEach(func() {
		if !testCluster.Keelson {
			Skip("restarts only a server this suite started")
		}
	})

	It("keeps every object across a restart and answers watches from before it with 410 Gone", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		for i := range 5 {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("keep%d", i), map[string]string{"i": fmt.Sprint(i)}), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		before, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		first := before.Items[0].ResourceVersion

		Expect(testCluster.Restart(false)).To(Succeed())
		client = testCluster.Clientset()

		after, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(after.Items).To(Equal(before.Items))

		// A fresh watch cache holds no history from before the restart.
		w, err := client.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: first})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		ev := nextEvent(w)
		Expect(ev.Type).To(Equal(watch.Error))
		status := ev.Object.(*metav1.Status)
		Expect(status.Code).To(Equal(int32(410)))
		Expect(status.Reason).To(Equal(metav1.StatusReasonExpired))
		Expect(status.Message).To(HavePrefix("too old resource version: " + first + " ("))
	})

	It("never leaves a half-written object when killed during writes", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		writeCtx, stopWriting := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; writeCtx.Err() == nil; i++ {
					_, _ = client.CoreV1().ConfigMaps(ns).Create(writeCtx, configMap(fmt.Sprintf("w%d-%d", w, i), map[string]string{"payload": fmt.Sprint(i)}), metav1.CreateOptions{})
				}
			})
		}
		// Kill the server once writes are flowing, so that some are in flight when it dies.
		Eventually(func() int {
			list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0", LabelSelector: "app=test"})
			if err != nil {
				return 0
			}
			return len(list.Items)
		}).Should(BeNumerically(">=", 20))
		Expect(testCluster.Restart(true)).To(Succeed())
		stopWriting()
		wg.Wait()
		client = testCluster.Clientset()
		list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=test"})
		Expect(err).NotTo(HaveOccurred())
		Expect(list.Items).NotTo(BeEmpty())
		for _, cm := range list.Items {
			Expect(cm.UID).NotTo(BeEmpty())
			Expect(cm.Data).To(HaveKey("payload"))
			got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, cm.Name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Data).To(Equal(cm.Data))
		}
	})
})
