package node

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// busybox is the image the project builds from the host's busybox-static.
const busybox = "busybox:1.37"

func shellPod(name, script string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: ptr.To[int64](2),
		Containers:                    []corev1.Container{{Name: "c", Image: busybox, Command: []string{"sh", "-c", script}}},
	}}
}

// hostDir is a directory on this host that a spec's pods write into through a hostPath
// volume, so that the spec can read what happened inside them.
func hostDir() string {
	dir, err := os.MkdirTemp("", "keelson-node-spec-")
	Expect(err).NotTo(HaveOccurred())
	Expect(os.Chmod(dir, 0o777)).To(Succeed())
	DeferCleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func withHostDir(p *corev1.Pod, dir string) *corev1.Pod {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "out", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}})
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].VolumeMounts = append(p.Spec.Containers[i].VolumeMounts, corev1.VolumeMount{Name: "out", MountPath: "/out"})
	}
	return p
}

func readFile(path string) func() string {
	return func() string {
		b, _ := os.ReadFile(path)
		return string(b)
	}
}

var _ = Describe("Pods on a real node", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("run to completion with their environment, termination message and full status", func(ctx SpecContext) {
		p := shellPod("done", `echo "$GREETING from $POD_NAME in $POD_NS, limit $MEM_MB" > /dev/termination-log`)
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "WHO", Value: "world"},
			{Name: "GREETING", Value: "hello $(WHO)"},
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "MEM_MB", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resourceMust("1Mi")}}},
		}
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resourceMust("64Mi")}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := waitForPhase(ctx, ns, "done", corev1.PodSucceeded)
		Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
		cs := pod.Status.ContainerStatuses[0]
		Expect(cs.State.Terminated).NotTo(BeNil())
		Expect(cs.State.Terminated.ExitCode).To(BeZero())
		Expect(cs.State.Terminated.Reason).To(Equal("Completed"))
		Expect(cs.State.Terminated.Message).To(Equal("hello world from done in " + ns + ", limit 64\n"))
		Expect(cs.ContainerID).To(HavePrefix("containerd://"))
		Expect(pod.Status.PodIP).To(HavePrefix("10.244."))
		Expect(pod.Status.HostIP).NotTo(BeEmpty())
		Expect(pod.Status.StartTime).NotTo(BeNil())
		Expect(podCondition(pod, corev1.PodReady).Status).To(Equal(corev1.ConditionFalse))
		Expect(podCondition(pod, corev1.PodReady).Reason).To(Equal("PodCompleted"))
		Expect(eventsOf(ctx, ns, "done")).To(ContainElements(
			"Normal Scheduled Successfully assigned "+ns+"/done to "+nodeName,
			`Normal Pulled Container image "`+busybox+`" already present on machine`,
			"Normal Created Created container: c",
			"Normal Started Started container c"))
	})

	It("fail with the exit code and run init containers first", func(ctx SpecContext) {
		dir := hostDir()
		p := withHostDir(shellPod("failing", "cat /out/init-ran; exit 3"), dir)
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: busybox, Command: []string{"sh", "-c", "echo yes > /out/init-ran"},
			VolumeMounts: p.Spec.Containers[0].VolumeMounts}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := waitForPhase(ctx, ns, "failing", corev1.PodFailed)
		Expect(pod.Status.InitContainerStatuses[0].State.Terminated.Reason).To(Equal("Completed"))
		t := pod.Status.ContainerStatuses[0].State.Terminated
		Expect(t.ExitCode).To(Equal(int32(3)))
		Expect(t.Reason).To(Equal("Error"))
		Expect(readFile(filepath.Join(dir, "init-ran"))()).To(Equal("yes\n"))
	})

	It("restart a container whose liveness probe fails, with back-off", func(ctx SpecContext) {
		p := shellPod("unhealthy", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 600")
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}},
			PeriodSeconds: 1, FailureThreshold: 1}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, "unhealthy", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			cs := pod.Status.ContainerStatuses
			g.Expect(cs).To(HaveLen(1))
			g.Expect(cs[0].RestartCount).To(BeNumerically(">=", 2))
			g.Expect(cs[0].LastTerminationState.Terminated).NotTo(BeNil())
			g.Expect(cs[0].LastTerminationState.Terminated.ExitCode).To(Equal(int32(137)))
		}).WithTimeout(90 * time.Second).Should(Succeed())
		Expect(eventsOf(ctx, ns, "unhealthy")).To(ContainElements(
			"Warning Unhealthy Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory",
			"Normal Killing Container c failed liveness probe, will be restarted"))
		Eventually(func() []string { return eventsOf(ctx, ns, "unhealthy") }).WithTimeout(60 * time.Second).Should(ContainElement(
			HavePrefix("Warning BackOff Back-off restarting failed container c in pod unhealthy_" + ns)))
	})

	It("run the preStop hook before the container stops", func(ctx SpecContext) {
		dir := hostDir()
		p := withHostDir(shellPod("stopping", "trap 'echo term >> /out/log; exit 0' TERM; echo started >> /out/log; while true; do sleep 0.1; done"), dir)
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](10)
		p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /out/log"}}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForPhase(ctx, ns, "stopping", corev1.PodRunning)
		Eventually(readFile(filepath.Join(dir, "log"))).Should(Equal("started\n"))
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "stopping", metav1.DeleteOptions{})).To(Succeed())
		waitForGone(ctx, ns, "stopping")
		Expect(readFile(filepath.Join(dir, "log"))()).To(Equal("started\nprestop\nterm\n"))
	})

	It("see ConfigMap and Secret volume updates while running", func(ctx SpecContext) {
		dir := hostDir()
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"key": "one"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"pw": "first"}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		p := withHostDir(shellPod("watcher", "while true; do cat /cfg/key > /out/cfg.tmp; mv /out/cfg.tmp /out/cfg; cat /sec/pw > /out/sec.tmp; mv /out/sec.tmp /out/sec; sleep 0.2; done"), dir)
		p.Spec.Volumes = append(p.Spec.Volumes,
			corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}},
			corev1.Volume{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "sec"}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "cfg", MountPath: "/cfg"}, corev1.VolumeMount{Name: "sec", MountPath: "/sec"})
		_, err = client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(readFile(filepath.Join(dir, "cfg"))).Should(Equal("one"))
		Eventually(readFile(filepath.Join(dir, "sec"))).Should(Equal("first"))
		_, err = client.CoreV1().ConfigMaps(ns).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"key": "two"}}, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Secrets(ns).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec"}, StringData: map[string]string{"pw": "second"}}, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(readFile(filepath.Join(dir, "cfg"))).Should(Equal("two"))
		Eventually(readFile(filepath.Join(dir, "sec"))).Should(Equal("second"))
	})

	It("show ErrImagePull, then ImagePullBackOff, for an image the node does not have", func(ctx SpecContext) {
		p := shellPod("missing", "true")
		p.Spec.Containers[0].Image = "registry.example/none/such:1.0"
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		reasons := map[string]string{}
		Eventually(func(g Gomega) {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, "missing", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
			if w := pod.Status.ContainerStatuses[0].State.Waiting; w != nil {
				reasons[w.Reason] = w.Message
			}
			g.Expect(reasons).To(HaveKey("ErrImagePull"))
			g.Expect(reasons).To(HaveKey("ImagePullBackOff"))
		}).WithPolling(200 * time.Millisecond).WithTimeout(60 * time.Second).Should(Succeed())
		Expect(reasons["ErrImagePull"]).To(ContainSubstring("registry.example/none/such:1.0"))
		Expect(reasons["ImagePullBackOff"]).To(HavePrefix(`Back-off pulling image "registry.example/none/such:1.0": ErrImagePull: `))
	})

	It("leave no container, sandbox or network namespace behind once deleted", func(ctx SpecContext) {
		p := shellPod("brief", "sleep 600")
		p.Labels = map[string]string{"app": "brief"}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "brief"}, Spec: corev1.ServiceSpec{
			Selector: p.Labels, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := waitForPhase(ctx, ns, "brief", corev1.PodRunning)
		Expect(runtimeHas(ctx, string(pod.UID))).To(BeTrue())
		// The proxy has rules for the pod as the Service's endpoint.
		if testCluster.Keelson {
			Eventually(proxyRules).Should(ContainSubstring(pod.Status.PodIP + " "))
		}
		netnsBefore := netnsCount()
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "brief", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})).To(Succeed())
		waitForGone(ctx, ns, "brief")
		Eventually(func() bool { return runtimeHas(ctx, string(pod.UID)) }).Should(BeFalse())
		Eventually(netnsCount).Should(BeNumerically("<", netnsBefore))
		if testCluster.Keelson {
			Eventually(proxyRules).ShouldNot(ContainSubstring(pod.Status.PodIP + " "))
		}
	})
})

var _ = Describe("A node agent that restarts", func() {
	It("adopts the pods that run instead of restarting them", func(ctx SpecContext) {
		if !testCluster.Keelson {
			Skip("restarts the node agent of a cluster the suite started")
		}
		ns := newNamespace(ctx)
		_, err := client.CoreV1().Pods(ns).Create(ctx, shellPod("steady", "sleep 600"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		before := waitForPhase(ctx, ns, "steady", corev1.PodRunning)
		Expect(testCluster.Restart(false)).To(Succeed())
		client = testCluster.Clientset()
		Eventually(func(g Gomega) {
			n, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(n.Status.Conditions).To(ContainElement(And(HaveField("Type", corev1.NodeReady), HaveField("Status", corev1.ConditionTrue))))
		}).Should(Succeed())
		Consistently(func(g Gomega) {
			pod, err := client.CoreV1().Pods(ns).Get(ctx, "steady", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
			g.Expect(pod.Status.ContainerStatuses[0].ContainerID).To(Equal(before.Status.ContainerStatuses[0].ContainerID))
			g.Expect(pod.Status.ContainerStatuses[0].RestartCount).To(BeZero())
		}, "3s").Should(Succeed())
		Expect(runtimeHas(ctx, string(before.UID))).To(BeTrue())
		// The next specs need the controllers back: newNamespace waits for a new namespace's
		// default ServiceAccount.
		newNamespace(ctx)
	})
})
