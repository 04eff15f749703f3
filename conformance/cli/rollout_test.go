package cli

import (
	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var _ = Describe("Rollouts", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		if _, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err != nil {
			Skip("rollouts need a controller manager")
		}
		ns = newNamespace(ctx)
	})

	It("follows a rollout to the end, lists its history and undoes it", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		kubectl(ctx, "-n", ns, "create", "deployment", "web", "--image=busybox:1", "--replicas=2")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		kubectl(ctx, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "history", "deployment/web")).To(Equal("deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "undo", "deployment/web")).To(Equal("deployment.apps/web rolled back\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}")).To(Equal("busybox:1 3"))
	})

	It("holds a paused rollout until it is resumed", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		kubectl(ctx, "-n", ns, "create", "deployment", "web", "--image=busybox:1")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "pause", "deployment/web")).To(Equal("deployment.apps/web paused\n"))
		kubectl(ctx, "-n", ns, "set", "image", "deployment/web", "busybox=busybox:2")
		Eventually(func() string {
			return kubectl(ctx, "-n", ns, "get", "deployment", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}")
		}).Should(Equal("DeploymentPaused"))
		Consistently(func() []string {
			return lines(kubectl(ctx, "-n", ns, "get", "replicasets", "-o", "name"))
		}, "1s").Should(HaveLen(1))
		Expect(kubectl(ctx, "-n", ns, "rollout", "resume", "deployment/web")).To(Equal("deployment.apps/web resumed\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "deployment/web", "--timeout=60s")).To(HaveSuffix("deployment \"web\" successfully rolled out\n"))
		Expect(lines(kubectl(ctx, "-n", ns, "get", "replicasets", "-o", "name"))).To(HaveLen(2))
	})

	It("reports a rollout that passes its progress deadline", func(ctx SpecContext) {
		// No pod ever becomes ready here, so the rollout stalls.
		kubectl(ctx, "-n", ns, "create", "deployment", "stuck", "--image=busybox:1")
		kubectl(ctx, "-n", ns, "patch", "deployment", "stuck", "-p", `{"spec":{"progressDeadlineSeconds":2}}`)
		r := kubectlFails(ctx, "-n", ns, "rollout", "status", "deployment/stuck", "--timeout=60s")
		Expect(r.Stderr).To(Equal("error: deployment \"stuck\" exceeded its progress deadline\n"), "%s", r)
		Expect(kubectl(ctx, "-n", ns, "get", "deployment", "stuck", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].status} {.status.conditions[?(@.type==\"Progressing\")].message}")).
			To(MatchRegexp(`^False ReplicaSet "stuck-[a-z0-9]+" has timed out progressing\.$`))
	})
})

const statefulSetManifest = `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 2
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: busybox:1
`

var _ = Describe("StatefulSet and DaemonSet rollouts", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		if _, err := client.CoordinationV1().Leases("kube-system").Get(ctx, "kube-controller-manager", metav1.GetOptions{}); err != nil {
			Skip("rollouts need a controller manager")
		}
		ns = newNamespace(ctx)
	})

	It("follows a StatefulSet's rollout, lists its revisions and undoes it", func(ctx SpecContext) {
		cluster.MarkPodsReady(client, ns)
		kubectlWith(ctx, invocation{stdin: statefulSetManifest}, "-n", ns, "create", "-f", "-")
		// The API server defaults a partition of 0, so kubectl reports a partitioned rollout.
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "statefulset/web", "--timeout=60s")).To(HaveSuffix("partitioned roll out complete: 2 new pods have been updated...\n"))
		revision := func() string {
			return kubectl(ctx, "-n", ns, "get", "statefulset", "web", "-o", "jsonpath={.status.currentRevision} {.status.updateRevision}")
		}
		first := revision()
		Expect(first).To(MatchRegexp(`^(web-[a-z0-9]+) (web-[a-z0-9]+)$`))
		kubectl(ctx, "-n", ns, "set", "image", "statefulset/web", "c=busybox:2")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "statefulset/web", "--timeout=60s")).To(HaveSuffix("partitioned roll out complete: 2 new pods have been updated...\n"))
		Eventually(revision).ShouldNot(Equal(first))
		Expect(kubectl(ctx, "-n", ns, "rollout", "history", "statefulset/web")).To(Equal("statefulset.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "undo", "statefulset/web")).To(Equal("statefulset.apps/web rolled back\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "statefulset/web", "--timeout=60s")).To(HaveSuffix("partitioned roll out complete: 2 new pods have been updated...\n"))
		// The first revision is the update revision again, and all pods are back on it.
		Eventually(revision).Should(Equal(first))
		Expect(kubectl(ctx, "-n", ns, "get", "statefulset", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")).To(Equal("busybox:1"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "history", "statefulset/web")).To(Equal("statefulset.apps/web \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"))
	})

	It("follows a DaemonSet's rollout and undoes it", func(ctx SpecContext) {
		label := "keelson.test/" + ns
		node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: ns + "-node", Labels: map[string]string{label: "yes"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { _ = client.CoreV1().Nodes().Delete(ctx, node.Name, metav1.DeleteOptions{}) })
		cluster.BindAndRunPods(client, ns)
		manifest := `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {"` + label + `": "yes"}
      containers:
      - name: c
        image: busybox:1
`
		kubectlWith(ctx, invocation{stdin: manifest}, "-n", ns, "create", "-f", "-")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s")).To(HaveSuffix("daemon set \"agent\" successfully rolled out\n"))
		kubectl(ctx, "-n", ns, "set", "image", "daemonset/agent", "c=busybox:2")
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s")).To(HaveSuffix("daemon set \"agent\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "history", "daemonset/agent")).To(Equal("daemonset.apps/agent \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "undo", "daemonset/agent")).To(Equal("daemonset.apps/agent rolled back\n"))
		Expect(kubectl(ctx, "-n", ns, "rollout", "status", "daemonset/agent", "--timeout=60s")).To(HaveSuffix("daemon set \"agent\" successfully rolled out\n"))
		Expect(kubectl(ctx, "-n", ns, "get", "pods", "-l", "app=agent", "-o", "jsonpath={.items[*].spec.containers[0].image}")).To(Equal("busybox:1"))
		Expect(kubectl(ctx, "-n", ns, "get", "daemonset", "agent", "-o", "jsonpath={.metadata.annotations.deprecated\\.daemonset\\.template\\.generation}")).To(Equal("3"))
	})
})
