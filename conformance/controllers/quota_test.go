package controllers

import (
	"fmt"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func quota(name string, hard map[corev1.ResourceName]string) *corev1.ResourceQuota {
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{}}}
	for n, v := range hard {
		q.Spec.Hard[n] = resource.MustParse(v)
	}
	return q
}

// quotaUsed waits until the quota's status has hard from its spec and the given usage.
func quotaUsed(ctx SpecContext, ns, name string, used map[corev1.ResourceName]string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		q, err := client.CoreV1().ResourceQuotas(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(q.Status.Hard).To(HaveLen(len(q.Spec.Hard)))
		for n, v := range q.Spec.Hard {
			h := q.Status.Hard[n]
			g.Expect(h.String()).To(Equal(v.String()), "status.hard[%s]", n)
		}
		got := map[corev1.ResourceName]string{}
		for n, v := range q.Status.Used {
			got[n] = v.String()
		}
		g.Expect(got).To(Equal(used))
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

func quotaPod(name string, requests, limits corev1.ResourceList) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox",
			Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}}},
	}
}

var _ = Describe("Resource quotas", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("count objects as they are created and deleted, and refuse one over the limit", func(ctx SpecContext) {
		cms, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ResourceQuotas(ns).Create(ctx, quota("objects", map[corev1.ResourceName]string{
			"pods": "2", "services": "1", "count/deployments.apps": "1", "configmaps": "10",
		}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			// The namespace's kube-root-ca.crt may arrive after the quota.
			cms, err = client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cms.Items).NotTo(BeEmpty())
		}).Should(Succeed())
		quotaUsed(ctx, ns, "objects", map[corev1.ResourceName]string{
			"pods": "0", "services": "0", "count/deployments.apps": "0", "configmaps": fmt.Sprint(len(cms.Items))})

		for _, name := range []string{"a", "b"} {
			_, err := client.CoreV1().Pods(ns).Create(ctx, quotaPod(name, nil, nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		_, err = client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "d1"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "objects", map[corev1.ResourceName]string{
			"pods": "2", "services": "0", "count/deployments.apps": "1", "configmaps": fmt.Sprint(len(cms.Items))})

		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("c", nil, nil), metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`pods "c" is forbidden: exceeded quota: objects, requested: pods=1, used: pods=2, limited: pods=2`))
		d2 := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d2"}}
		d2.Spec = appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}
		_, err = client.AppsV1().Deployments(ns).Create(ctx, d2, metav1.CreateOptions{})
		Expect(err).To(MatchError(`deployments.apps "d2" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1`))

		// Deleting gives the usage back.
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "a", metav1.DeleteOptions{})).To(Succeed())
		Expect(client.AppsV1().Deployments(ns).Delete(ctx, "d1", metav1.DeleteOptions{})).To(Succeed())
		quotaUsed(ctx, ns, "objects", map[corev1.ResourceName]string{
			"pods": "1", "services": "0", "count/deployments.apps": "0", "configmaps": fmt.Sprint(len(cms.Items))})
		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("c", nil, nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("charge compute resources, require them declared, and give them back when a pod finishes", func(ctx SpecContext) {
		_, err := client.CoreV1().ResourceQuotas(ns).Create(ctx, quota("compute", map[corev1.ResourceName]string{
			"requests.cpu": "1", "limits.memory": "1Gi",
		}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "compute", map[corev1.ResourceName]string{"requests.cpu": "0", "limits.memory": "0"})

		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("bare", nil, nil), metav1.CreateOptions{})
		Expect(err).To(MatchError(`pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: c; requests.cpu for: c`))

		requests := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("600m")}
		limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}
		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("one", requests, limits), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "compute", map[corev1.ResourceName]string{"requests.cpu": "600m", "limits.memory": "512Mi"})
		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("two", requests, limits), metav1.CreateOptions{})
		Expect(err).To(MatchError(`pods "two" is forbidden: exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1`))

		// A finished pod holds no compute.
		setPodPhase(ctx, ns, "one", corev1.PodSucceeded, false)
		quotaUsed(ctx, ns, "compute", map[corev1.ResourceName]string{"requests.cpu": "0", "limits.memory": "0"})
		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("two", requests, limits), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
	})

	It("count only the pods within their scopes", func(ctx SpecContext) {
		be := quota("besteffort", map[corev1.ResourceName]string{"pods": "1"})
		be.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
		_, err := client.CoreV1().ResourceQuotas(ns).Create(ctx, be, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		term := quota("terminating", map[corev1.ResourceName]string{"pods": "5", "requests.cpu": "2"})
		term.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}
		_, err = client.CoreV1().ResourceQuotas(ns).Create(ctx, term, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		prio := quota("no-priority-class", map[corev1.ResourceName]string{"pods": "10"})
		prio.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
			{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpDoesNotExist}}}
		_, err = client.CoreV1().ResourceQuotas(ns).Create(ctx, prio, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "besteffort", map[corev1.ResourceName]string{"pods": "0"})
		quotaUsed(ctx, ns, "terminating", map[corev1.ResourceName]string{"pods": "0", "requests.cpu": "0"})
		quotaUsed(ctx, ns, "no-priority-class", map[corev1.ResourceName]string{"pods": "0"})

		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("be-1", nil, nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Pods(ns).Create(ctx, quotaPod("be-2", nil, nil), metav1.CreateOptions{})
		Expect(err).To(MatchError(`pods "be-2" is forbidden: exceeded quota: besteffort, requested: pods=1, used: pods=1, limited: pods=1`))
		// A pod with requests is not best-effort: that quota does not apply to it.
		burst := quotaPod("burst", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}, nil)
		_, err = client.CoreV1().Pods(ns).Create(ctx, burst, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		job := quotaPod("job", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}, nil)
		job.Spec.ActiveDeadlineSeconds = ptr.To[int64](60)
		_, err = client.CoreV1().Pods(ns).Create(ctx, job, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		quotaUsed(ctx, ns, "besteffort", map[corev1.ResourceName]string{"pods": "1"})
		quotaUsed(ctx, ns, "terminating", map[corev1.ResourceName]string{"pods": "1", "requests.cpu": "250m"})
		quotaUsed(ctx, ns, "no-priority-class", map[corev1.ResourceName]string{"pods": "3"})
	})

	It("charge services for their node ports and load balancers, on create and when their type changes", func(ctx SpecContext) {
		_, err := client.CoreV1().ResourceQuotas(ns).Create(ctx, quota("svc", map[corev1.ResourceName]string{
			"services": "3", "services.nodeports": "1", "services.loadbalancers": "0",
		}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "svc", map[corev1.ResourceName]string{"services": "0", "services.nodeports": "0", "services.loadbalancers": "0"})
		service := func(name string, typ corev1.ServiceType, ports int) *corev1.Service {
			s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{Type: typ, Selector: map[string]string{"app": name}}}
			for i := range ports {
				s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: fmt.Sprintf("p%d", i), Port: int32(80 + i)})
			}
			return s
		}
		_, err = client.CoreV1().Services(ns).Create(ctx, service("a", corev1.ServiceTypeClusterIP, 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Services(ns).Create(ctx, service("b", corev1.ServiceTypeNodePort, 2), metav1.CreateOptions{})
		Expect(err).To(MatchError(`services "b" is forbidden: exceeded quota: svc, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1`))

		_, err = client.CoreV1().Services(ns).Patch(ctx, "a", types.MergePatchType, []byte(`{"spec":{"type":"NodePort"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "svc", map[corev1.ResourceName]string{"services": "1", "services.nodeports": "1", "services.loadbalancers": "0"})
		_, err = client.CoreV1().Services(ns).Create(ctx, service("c", corev1.ServiceTypeLoadBalancer, 1), metav1.CreateOptions{})
		Expect(err).To(MatchError(`services "c" is forbidden: exceeded quota: svc, requested: services.loadbalancers=1,services.nodeports=1, ` +
			`used: services.loadbalancers=0,services.nodeports=1, limited: services.loadbalancers=0,services.nodeports=1`))

		Expect(client.CoreV1().Services(ns).Delete(ctx, "a", metav1.DeleteOptions{})).To(Succeed())
		quotaUsed(ctx, ns, "svc", map[corev1.ResourceName]string{"services": "0", "services.nodeports": "0", "services.loadbalancers": "0"})
	})

	It("admit concurrent creates no further than the limit", func(ctx SpecContext) {
		_, err := client.CoreV1().ResourceQuotas(ns).Create(ctx, quota("secrets", map[corev1.ResourceName]string{"secrets": "3"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		quotaUsed(ctx, ns, "secrets", map[corev1.ResourceName]string{"secrets": "0"})
		var wg sync.WaitGroup
		var mu sync.Mutex
		created, refused := 0, 0
		for i := range 10 {
			wg.Go(func() {
				defer GinkgoRecover()
				_, err := client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%d", i)}}, metav1.CreateOptions{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					created++
				case apierrors.IsForbidden(err):
					refused++
				default:
					Fail(err.Error())
				}
			})
		}
		wg.Wait()
		Expect([]int{created, refused}).To(Equal([]int{3, 7}))
		quotaUsed(ctx, ns, "secrets", map[corev1.ResourceName]string{"secrets": "3"})
	})
})
