package k9s

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
)

func pod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "main", Image: "busybox:1.36", Command: []string{"sleep", "3600"},
		}}},
	}
}

// createPod creates a pod, retrying while a new namespace's default service account, which
// upstream's admission requires, is still being made.
func createPod(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Eventually(func(ctx context.Context) error {
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod(name), metav1.CreateOptions{})
		return err
	}).WithContext(ctx).Should(Succeed())
}

var _ = Describe("k9s", Ordered, func() {
	var (
		ns   string
		term *terminal
	)

	BeforeAll(func(ctx SpecContext) {
		ns = fmt.Sprintf("keelson-k9s-%s", utilrand.String(6))
		_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_ = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
		})
		createPod(ctx, ns, "web")
		createPod(ctx, ns, "cache")
		for name, data := range map[string]map[string]string{
			"app-config":    {"color": "blue"},
			"feature-flags": {"beta": "true"},
		} {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		labels := map[string]string{"app": "api"}
		_, err = client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "api"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       pod("api").Spec,
				},
			},
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())

		term = startK9s(ns)
	})

	// table waits until k9s shows the table whose title starts with title and whose rows hold
	// names.
	table := func(title string, names ...string) {
		GinkgoHelper()
		Eventually(term.currentView).Should(And(
			HaveField("Title", HavePrefix(title)),
			HaveField("Names", ContainElements(names)),
		), term.describe(fmt.Sprintf("k9s did not show %s with %s", title, strings.Join(names, ", "))))
	}

	It("shows the pods of the namespace it starts in, and the server's version", func(ctx SpecContext) {
		table(fmt.Sprintf("pods(%s)", ns), "web", "cache")
		version, err := client.Discovery().ServerVersion()
		Expect(err).NotTo(HaveOccurred())
		Eventually(term.screen).Should(ContainSubstring(version.GitVersion), term.describe("k9s did not show the server's version"))
	})

	It("lists the namespaces after :ns", func() {
		term.command(":ns")
		table("namespaces(all)", "default", "kube-system", "kube-public", ns)
	})

	It("lists the configmaps after :cm", func() {
		term.command(":cm")
		table(fmt.Sprintf("configmaps(%s)", ns), "app-config", "feature-flags")
	})

	It("lists the deployments after :deploy", func() {
		term.command(":deploy")
		table(fmt.Sprintf("deployments(%s)", ns), "api")
	})

	It("follows pods created and deleted while it shows them", func(ctx SpecContext) {
		term.command(":pods")
		table(fmt.Sprintf("pods(%s)", ns), "web", "cache")
		createPod(ctx, ns, "worker")
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "cache", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		Eventually(term.currentView).Should(And(
			HaveField("Names", ContainElements("web", "worker")),
			HaveField("Names", Not(ContainElement("cache"))),
		), term.describe("k9s did not follow the pod created and the pod deleted"))
	})

	It("logs no error", func() {
		log := term.log()
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, " WRN ") {
				GinkgoWriter.Println("k9s warned:", line)
			}
		}
		Expect(errorLines(log)).To(BeEmpty(), "k9s log:\n%s", log)
	})
})
