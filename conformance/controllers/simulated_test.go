package controllers

import (
	"fmt"
	"time"

	"github.com/keelson/keelson/simulator"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
)

// These specs run workloads end to end on simulated nodes: the scheduler places the pods and
// the nodes run them, with no stand-in for the kubelet in the spec.
var _ = Describe("Workloads on simulated nodes", func() {
	var group string
	BeforeEach(func() {
		nodes := testCluster.SimulatedNodes(simulator.Options{Count: 3, Prefix: "workloads-", Labels: map[string]string{"workloads": "yes"}})
		group = "yes"
		Expect(nodes.Names()).To(HaveLen(3))
	})
	template := func(app, image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{NodeSelector: map[string]string{"workloads": group},
				Containers: []corev1.Container{{Name: "c", Image: image}}},
		}
	}

	It("rolls a Deployment out, updates it and rolls it back", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(4)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: template("web", "nginx:1")},
		}
		_, err := client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		complete := func(image string) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				d, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(d.Status.ObservedGeneration).To(Equal(d.Generation))
				g.Expect(d.Status.UpdatedReplicas).To(BeEquivalentTo(4))
				g.Expect(d.Status.AvailableReplicas).To(BeEquivalentTo(4))
				g.Expect(d.Status.Replicas).To(BeEquivalentTo(4))
				pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(pods.Items).To(HaveLen(4))
				for _, p := range pods.Items {
					g.Expect(p.Spec.Containers[0].Image).To(Equal(image))
					g.Expect(p.Status.Phase).To(Equal(corev1.PodRunning))
					g.Expect(p.Spec.NodeName).To(HavePrefix("workloads-"))
				}
			}).WithContext(ctx).Should(Succeed())
		}
		complete("nginx:1")

		_, err = client.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"nginx:2"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		complete("nginx:2")

		// What `kubectl rollout undo` does: put the previous revision's template back.
		rss, err := client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		Expect(err).NotTo(HaveOccurred())
		Expect(rss.Items).To(HaveLen(2))
		var first *appsv1.ReplicaSet
		for i := range rss.Items {
			if rss.Items[i].Annotations["deployment.kubernetes.io/revision"] == "1" {
				first = &rss.Items[i]
			}
		}
		Expect(first).NotTo(BeNil())
		current, err := client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		current.Spec.Template = first.Spec.Template
		delete(current.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		_, err = client.AppsV1().Deployments(ns).Update(ctx, current, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		complete("nginx:1")
		rolled, err := client.AppsV1().ReplicaSets(ns).Get(ctx, first.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(rolled.Annotations["deployment.kubernetes.io/revision"]).To(Equal("3"))
	})

	It("scales a StatefulSet up in order and down in reverse order", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		defer w.Stop()
		_, err = client.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: appsv1.StatefulSetSpec{Replicas: ptr.To(int32(3)), ServiceName: "db",
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Template: template("db", "postgres")},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// Each pod is created only once the one before it runs and is ready.
		var created []string
		running := map[string]bool{}
		for len(running) < 3 {
			select {
			case ev := <-w.ResultChan():
				p, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				if ev.Type == watch.Added {
					for i := 0; i < len(created); i++ {
						Expect(running).To(HaveKey(created[i]), "%s was created before %s ran", p.Name, created[i])
					}
					created = append(created, p.Name)
				}
				if p.Status.Phase == corev1.PodRunning {
					running[p.Name] = true
				}
			case <-time.After(30 * time.Second):
				Fail(fmt.Sprintf("the set did not come up: created %v, running %v", created, running))
			}
		}
		Expect(created).To(Equal([]string{"db-0", "db-1", "db-2"}))

		_, err = client.AppsV1().StatefulSets(ns).Patch(ctx, "db", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		var deleted []string
		for len(deleted) < 3 {
			select {
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Deleted {
					deleted = append(deleted, p.Name)
				}
			case <-time.After(30 * time.Second):
				Fail(fmt.Sprintf("the set did not scale down: deleted %v", deleted))
			}
		}
		Expect(deleted).To(Equal([]string{"db-2", "db-1", "db-0"}))
	})

	It("retries a Job whose pod fails and finishes it", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		tmpl := template("batch", "busybox")
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
		tmpl.Annotations = map[string]string{simulator.DurationAnnotation: "3s"}
		_, err := client.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "work"},
			Spec:       batchv1.JobSpec{Completions: ptr.To(int32(2)), BackoffLimit: ptr.To(int32(3)), Template: tmpl},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		// The first pod will exit 1: the node reads the exit code when the pod's time is up.
		var first string
		Eventually(func(g Gomega) {
			pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=work"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pods.Items).NotTo(BeEmpty())
			first = pods.Items[0].Name
		}).WithContext(ctx).Should(Succeed())
		_, err = client.CoreV1().Pods(ns).Patch(ctx, first, types.MergePatchType,
			fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"1"}}}`, simulator.ExitCodeAnnotation), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			j, err := client.BatchV1().Jobs(ns).Get(ctx, "work", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(j.Status.Failed).To(BeEquivalentTo(1))
			g.Expect(j.Status.Succeeded).To(BeEquivalentTo(2))
			var complete bool
			for _, c := range j.Status.Conditions {
				complete = complete || c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue
			}
			g.Expect(complete).To(BeTrue())
		}).WithContext(ctx).WithTimeout(60 * time.Second).Should(Succeed())
	})
})
