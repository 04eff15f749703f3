package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// outputOf runs a shell script in a one-off pod, changed by edit before it is created, and
// returns what the script wrote (stdout and stderr) through the termination message; the pod
// must succeed.
func outputOf(ctx context.Context, ns, name, script string, edit func(*corev1.Pod)) string {
	GinkgoHelper()
	p := shellPod(name, "{ "+script+"; } > /dev/termination-log 2>&1")
	if edit != nil {
		edit(p)
	}
	_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	pod := waitForDone(ctx, ns, name)
	msg := pod.Status.ContainerStatuses[0].State.Terminated.Message
	Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded), "the pod's output:\n%s", msg)
	return msg
}

// waitForDone waits for a pod to succeed or fail and returns it.
func waitForDone(ctx context.Context, ns, name string) *corev1.Pod {
	GinkgoHelper()
	var pod *corev1.Pod
	Eventually(func(g Gomega) {
		var err error
		pod, err = client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pod.Status.Phase).To(Or(Equal(corev1.PodSucceeded), Equal(corev1.PodFailed)), "status: %+v", pod.Status)
	}).Should(Succeed())
	return pod
}

func emptyDir(p *corev1.Pod, name, path string, medium corev1.StorageMedium) {
	p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: medium}}})
	p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: name, MountPath: path})
}

func containerSC(p *corev1.Pod) *corev1.SecurityContext {
	if p.Spec.Containers[0].SecurityContext == nil {
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{}
	}
	return p.Spec.Containers[0].SecurityContext
}

var _ = Describe("The kubelet's security context", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("runs as the pod's user and group, with fsGroup owning its volumes and among its groups", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "ids", "id; touch /data/f; stat -c '%g' /data /data/f", func(p *corev1.Pod) {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr.To[int64](1000), RunAsGroup: ptr.To[int64](2000), FSGroup: ptr.To[int64](3000)}
			emptyDir(p, "data", "/data", "")
		})
		Expect(out).To(Equal("uid=1000 gid=2000 groups=2000,3000\n3000\n3000\n"))
	})

	It("adds and drops capabilities", func(ctx SpecContext) {
		Expect(outputOf(ctx, ns, "no-net-admin", "ip addr add 10.9.9.9/32 dev lo || echo refused", nil)).To(ContainSubstring("refused"))
		Expect(outputOf(ctx, ns, "net-admin", "ip addr add 10.9.9.9/32 dev lo && ip addr show lo", func(p *corev1.Pod) {
			containerSC(p).Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}}
		})).To(ContainSubstring("inet 10.9.9.9/32"))
		Expect(outputOf(ctx, ns, "chown", "touch /tmp/f; chown 1234 /tmp/f && stat -c %u /tmp/f", nil)).To(Equal("1234\n"))
		Expect(outputOf(ctx, ns, "no-chown", "touch /tmp/f; chown 1234 /tmp/f || echo refused", func(p *corev1.Pod) {
			containerSC(p).Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"CHOWN"}}
		})).To(ContainSubstring("Operation not permitted"))
	})

	It("runs a privileged container with every capability and the host's devices", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "privileged", "mkdir /m; mount -t tmpfs none /m && echo mounted; grep CapEff /proc/self/status; test -e /dev/kmsg && echo kmsg", func(p *corev1.Pod) {
			containerSC(p).Privileged = ptr.To(true)
		})
		Expect(out).To(ContainSubstring("mounted\n"))
		if testCluster.Keelson {
			// Every capability the node's runtime has itself.
			status, err := os.ReadFile("/proc/self/status")
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring(regexp.MustCompile(`CapEff:\s+[0-9a-f]+`).FindString(string(status))))
		}
		Expect(out).To(ContainSubstring("kmsg\n"))
		out = outputOf(ctx, ns, "unprivileged", "mkdir /m; mount -t tmpfs none /m || echo refused; test -e /dev/kmsg || echo no-kmsg", nil)
		Expect(out).To(ContainSubstring("refused\n"))
		Expect(out).To(ContainSubstring("no-kmsg\n"))
	})

	It("keeps a read-only root filesystem read-only, and its volumes writable", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "readonly", "touch /f || echo refused; touch /data/f && echo written", func(p *corev1.Pod) {
			containerSC(p).ReadOnlyRootFilesystem = ptr.To(true)
			emptyDir(p, "data", "/data", "")
		})
		Expect(out).To(ContainSubstring("Read-only file system"))
		Expect(out).To(ContainSubstring("refused\nwritten\n"))
	})
})

var _ = Describe("The kubelet's resource limits", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("show as the container's cgroup limits", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "limited", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resourceMust("64Mi"), corev1.ResourceCPU: resourceMust("500m")},
				Requests: corev1.ResourceList{corev1.ResourceMemory: resourceMust("32Mi"), corev1.ResourceCPU: resourceMust("250m")},
			}
		})
		Expect(out).To(Equal("67108864\n50000\n100000\n256\n"))
	})

	It("kill a container that exceeds its memory limit as OOMKilled", func(ctx SpecContext) {
		p := shellPod("hungry", "tail /dev/zero")
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resourceMust("16Mi")}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := waitForDone(ctx, ns, "hungry")
		Expect(pod.Status.Phase).To(Equal(corev1.PodFailed))
		t := pod.Status.ContainerStatuses[0].State.Terminated
		Expect(t).NotTo(BeNil())
		Expect(t.Reason).To(Equal("OOMKilled"))
		Expect(t.ExitCode).To(Equal(int32(137)))
	})
})

func podOf(ctx context.Context, g Gomega, ns, name string) *corev1.Pod {
	pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	return pod
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

var _ = Describe("The kubelet's probes", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("hold liveness and readiness until the startup probe passes", func(ctx SpecContext) {
		dir := hostDir()
		p := withHostDir(shellPod("slow", "sleep 600"), dir)
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		started := corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/out/started"}}}
		c := &p.Spec.Containers[0]
		c.StartupProbe = &corev1.Probe{ProbeHandler: started, PeriodSeconds: 1, FailureThreshold: 60}
		// Liveness would restart the container at once if it ran before startup passed.
		c.LivenessProbe = &corev1.Probe{ProbeHandler: started, PeriodSeconds: 1, FailureThreshold: 1}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 1}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pod := podOf(ctx, g, ns, "slow")
			g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
			g.Expect(pod.Status.ContainerStatuses[0].State.Running).NotTo(BeNil())
		}).Should(Succeed())
		// Running but not started: neither ready nor restarted by its liveness probe.
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "slow", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		cs := pod.Status.ContainerStatuses[0]
		Expect(cs.Started).To(Equal(ptr.To(false)))
		Expect(cs.Ready).To(BeFalse())
		Expect(os.WriteFile(filepath.Join(dir, "started"), []byte("yes"), 0o644)).To(Succeed())
		waitForReady(ctx, ns, "slow")
		pod, err = client.CoreV1().Pods(ns).Get(ctx, "slow", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		cs = pod.Status.ContainerStatuses[0]
		Expect(cs.Started).To(Equal(ptr.To(true)))
		Expect(cs.Ready).To(BeTrue())
		Expect(cs.RestartCount).To(BeZero())
		Expect(eventsOf(ctx, ns, "slow")).To(ContainElement(
			"Warning Unhealthy Startup probe failed: cat: can't open '/out/started': No such file or directory"))
	})

	It("ask a gRPC health service", func(ctx SpecContext) {
		if !testCluster.Keelson {
			Skip("serves gRPC health from the host of a node the suite started")
		}
		// busybox has no gRPC server: the spec serves the health service on the host, and a
		// hostNetwork pod, whose IP is the node's, probes it.
		lis, err := net.Listen("tcp", ":0")
		Expect(err).NotTo(HaveOccurred())
		srv := grpc.NewServer()
		health := grpchealth.NewServer()
		healthpb.RegisterHealthServer(srv, health)
		go func() { _ = srv.Serve(lis) }()
		DeferCleanup(srv.Stop)
		health.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
		p := shellPod("grpc", "sleep 600")
		p.Spec.HostNetwork = true
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{
			Port: int32(lis.Addr().(*net.TCPAddr).Port), Service: ptr.To("svc")}}, PeriodSeconds: 1}
		_, err = client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return eventsOf(ctx, ns, "grpc") }).Should(ContainElement(
			`Warning Unhealthy Readiness probe failed: service unhealthy (responded with "NOT_SERVING")`))
		health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
		waitForReady(ctx, ns, "grpc")
	})

	It("report a failing HTTP readiness probe in the pod's conditions and events", func(ctx SpecContext) {
		p := shellPod("web", "mkdir -p /www; httpd -f -p 8080 -h /www")
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return eventsOf(ctx, ns, "web") }).Should(ContainElement(
			"Warning Unhealthy Readiness probe failed: HTTP probe failed with statuscode: 404"))
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		for _, t := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
			c := podCondition(pod, t)
			Expect(c.Status).To(Equal(corev1.ConditionFalse), "%s", t)
			Expect(c.Reason).To(Equal("ContainersNotReady"), "%s", t)
			Expect(c.Message).To(Equal("containers with unready status: [c]"), "%s", t)
		}
		// Once the path exists, the pod becomes ready.
		kc.Succeed(ctx, nil, "", "exec", "-n", ns, "web", "--", "touch", "/www/healthz")
		waitForReady(ctx, ns, "web")
	})

	It("check TCP sockets", func(ctx SpecContext) {
		p := shellPod("tcp", "httpd -f -p 8080 -h /tmp")
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "closed", Image: busybox, Command: []string{"sleep", "600"}})
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1}
		p.Spec.Containers[1].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9999)}}, PeriodSeconds: 1}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			pod := podOf(ctx, g, ns, "tcp")
			ready := map[string]bool{}
			for _, cs := range pod.Status.ContainerStatuses {
				ready[cs.Name] = cs.Ready
			}
			g.Expect(ready).To(Equal(map[string]bool{"c": true, "closed": false}))
			g.Expect(podCondition(pod, corev1.PodReady).Message).To(Equal("containers with unready status: [closed]"))
		}).Should(Succeed())
		Eventually(func() []string { return eventsOf(ctx, ns, "tcp") }).Should(ContainElement(And(
			HavePrefix("Warning Unhealthy Readiness probe failed: dial tcp "), HaveSuffix(":9999: connect: connection refused"))))
	})
})

var _ = Describe("The kubelet's init containers", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("start a sidecar before the main container and keep it running", func(ctx SpecContext) {
		dir := hostDir()
		p := withHostDir(shellPod("with-sidecar", "echo main >> /out/order; sleep 600"), dir)
		p.Spec.InitContainers = []corev1.Container{{Name: "sidecar", Image: busybox, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
			Command:      []string{"sh", "-c", "echo sidecar >> /out/order; touch /tmp/up; sleep 600"},
			StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/up"}}}, PeriodSeconds: 1},
			VolumeMounts: p.Spec.Containers[0].VolumeMounts}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForReady(ctx, ns, "with-sidecar")
		Eventually(readFile(filepath.Join(dir, "order"))).Should(Equal("sidecar\nmain\n"))
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "with-sidecar", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Status.Phase).To(Equal(corev1.PodRunning))
		sc := pod.Status.InitContainerStatuses[0]
		Expect(sc.State.Running).NotTo(BeNil())
		Expect(sc.Started).To(Equal(ptr.To(true)))
		Expect(sc.Ready).To(BeTrue())
		Expect(podCondition(pod, corev1.PodInitialized).Status).To(Equal(corev1.ConditionTrue))
	})

	It("stop a sidecar once the main containers complete, and the pod succeeds", func(ctx SpecContext) {
		p := shellPod("sidecar-done", "sleep 1")
		p.Spec.InitContainers = []corev1.Container{{Name: "sidecar", Image: busybox, RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
			Command: []string{"sleep", "600"}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var pod *corev1.Pod
		Eventually(func(g Gomega) {
			pod = podOf(ctx, g, ns, "sidecar-done")
			g.Expect(pod.Status.Phase).To(Equal(corev1.PodSucceeded))
			g.Expect(pod.Status.InitContainerStatuses).To(HaveLen(1))
			g.Expect(pod.Status.InitContainerStatuses[0].State.Terminated).NotTo(BeNil(), "status %+v events %v", pod.Status, eventsOf(ctx, ns, "sidecar-done"))
		}).Should(Succeed())
		Expect(pod.Status.ContainerStatuses[0].State.Terminated.Reason).To(Equal("Completed"))
		Expect(pod.Status.InitContainerStatuses[0].RestartCount).To(BeZero())
		Expect(eventsOf(ctx, ns, "sidecar-done")).To(ContainElement("Normal Killing Stopping container sidecar"))
	})

	It("fail the pod when an init container fails and the pod never restarts", func(ctx SpecContext) {
		p := shellPod("init-fails", "true")
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: busybox, Command: []string{"sh", "-c", "exit 2"}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := waitForPhase(ctx, ns, "init-fails", corev1.PodFailed)
		t := pod.Status.InitContainerStatuses[0].State.Terminated
		Expect(t).NotTo(BeNil())
		Expect(t.ExitCode).To(Equal(int32(2)))
		Expect(t.Reason).To(Equal("Error"))
		Expect(pod.Status.ContainerStatuses[0].State.Waiting).NotTo(BeNil())
		Expect(pod.Status.ContainerStatuses[0].State.Waiting.Reason).To(Equal("PodInitializing"))
		initialized := podCondition(pod, corev1.PodInitialized)
		Expect(initialized.Status).To(Equal(corev1.ConditionFalse))
		Expect(initialized.Reason).To(Equal("ContainersNotInitialized"))
		Expect(initialized.Message).To(Equal("containers with incomplete status: [init]"))
		Expect(podCondition(pod, corev1.PodReady).Reason).To(Equal("PodFailed"))
	})

	It("restart a failed init container when the pod always restarts", func(ctx SpecContext) {
		dir := hostDir()
		p := withHostDir(shellPod("init-retries", "sleep 600"), dir)
		p.Spec.RestartPolicy = corev1.RestartPolicyAlways
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: busybox, VolumeMounts: p.Spec.Containers[0].VolumeMounts,
			Command: []string{"sh", "-c", "test -e /out/once && exit 0; touch /out/once; exit 1"}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pod := waitForPhase(ctx, ns, "init-retries", corev1.PodRunning)
		ic := pod.Status.InitContainerStatuses[0]
		Expect(ic.RestartCount).To(Equal(int32(1)))
		Expect(ic.State.Terminated).NotTo(BeNil())
		Expect(ic.State.Terminated.ExitCode).To(BeZero())
		Expect(ic.LastTerminationState.Terminated).NotTo(BeNil())
		Expect(ic.LastTerminationState.Terminated.ExitCode).To(Equal(int32(1)))
	})
})

var _ = Describe("The kubelet's volumes", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("mount a memory-backed emptyDir as tmpfs", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "tmpfs", "grep ' /cache ' /proc/mounts", func(p *corev1.Pod) { emptyDir(p, "cache", "/cache", corev1.StorageMediumMemory) })
		Expect(out).To(HavePrefix("tmpfs /cache tmpfs rw"))
	})

	It("write the pod's labels, annotations and limits as downward API files", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "downward", "cd /info; for f in labels annotations cpu mem; do cat $f; echo; done", func(p *corev1.Pod) {
			p.Labels = map[string]string{"app": "demo", "tier": "back"}
			p.Annotations = map[string]string{"note": "hello"}
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resourceMust("250m"), corev1.ResourceMemory: resourceMust("32Mi")}
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "annotations", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['note']"}},
				{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu", Divisor: resourceMust("1m")}},
				{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resourceMust("1Mi")}},
			}}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "info", MountPath: "/info"})
		})
		Expect(out).To(Equal("app=\"demo\"\ntier=\"back\"\nhello\n250\n32\n"))
	})

	It("project a service account token that the API server accepts", func(ctx SpecContext) {
		token := outputOf(ctx, ns, "token", "cat /var/run/secrets/tokens/token", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "tokens", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3600)}},
			}}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "tokens", MountPath: "/var/run/secrets/tokens"})
		})
		Expect(strings.Count(token, ".")).To(Equal(2), "not a JWT: %q", token)
		review, err := client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.Error).To(BeEmpty())
		Expect(review.Status.Authenticated).To(BeTrue())
		Expect(review.Status.User.Username).To(Equal("system:serviceaccount:" + ns + ":default"))
		Expect(review.Status.User.Extra).To(HaveKeyWithValue("authentication.kubernetes.io/pod-name", authenticationv1.ExtraValue{"token"}))
	})

	It("create hostPath directories and files by type, and refuse a missing directory", func(ctx SpecContext) {
		dir := hostDir()
		out := outputOf(ctx, ns, "hostpaths", "echo in-dir > /d/f; echo in-file > /f; ls -ld /d /f | cut -c1", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes,
				corev1.Volume{Name: "d", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(dir, "new", "dir"), Type: ptr.To(corev1.HostPathDirectoryOrCreate)}}},
				corev1.Volume{Name: "f", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: filepath.Join(dir, "other", "file"), Type: ptr.To(corev1.HostPathFileOrCreate)}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
				corev1.VolumeMount{Name: "d", MountPath: "/d"}, corev1.VolumeMount{Name: "f", MountPath: "/f"})
		})
		Expect(out).To(Equal("d\n-\n"))
		Expect(readFile(filepath.Join(dir, "new", "dir", "f"))()).To(Equal("in-dir\n"))
		Expect(readFile(filepath.Join(dir, "other", "file"))()).To(Equal("in-file\n"))

		missing := filepath.Join(dir, "missing")
		p := shellPod("no-dir", "true")
		p.Spec.Volumes = []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: missing, Type: ptr.To(corev1.HostPathDirectory)}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "d", MountPath: "/d"}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return eventsOf(ctx, ns, "no-dir") }).Should(ContainElement(
			`Warning FailedMount MountVolume.SetUp failed for volume "d" : hostPath type check failed, ` + missing +
				` is not a directory, unable to determine its type: path "` + missing + `" does not exist`))
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "no-dir", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Status.Phase).To(Equal(corev1.PodPending))

		// A path of another type than the volume's.
		file := filepath.Join(dir, "other", "file")
		p = shellPod("no-socket", "true")
		p.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: file, Type: ptr.To(corev1.HostPathSocket)}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "s", MountPath: "/s"}}
		_, err = client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []string { return eventsOf(ctx, ns, "no-socket") }).Should(ContainElement(
			`Warning FailedMount MountVolume.SetUp failed for volume "s" : hostPath type check failed: ` + file + ` is not a socket file, it's a File`))
	})

	It("mount a claim bound to a hostPath persistent volume", func(ctx SpecContext) {
		dir := hostDir()
		pvName := ns + "-pv"
		// Keelson has no persistent volume binder: the spec binds the claim and the volume itself,
		// as the binder would (volumeName, claimRef and both phases Bound).
		pv, err := client.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: pvName}, Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resourceMust("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "",
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: "claim"},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx context.Context) {
			_ = client.CoreV1().PersistentVolumes().Delete(ctx, pvName, metav1.DeleteOptions{})
		})
		pvc, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "claim"}, Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(""),
			VolumeName:       pvName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resourceMust("1Gi")}},
		}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pv.Status.Phase = corev1.VolumeBound
		_, err = client.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		pvc.Status.Phase = corev1.ClaimBound
		pvc.Status.AccessModes = pvc.Spec.AccessModes
		pvc.Status.Capacity = pv.Spec.Capacity
		_, err = client.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())

		out := outputOf(ctx, ns, "claimant", "echo stored > /data/f && cat /data/f", func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "claim"}}})
			p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
		})
		Expect(out).To(Equal("stored\n"))
		Expect(readFile(filepath.Join(dir, "f"))()).To(Equal("stored\n"))
	})
})

var _ = Describe("The kubelet's names and networks", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("write /etc/hosts with the pod's hostname, subdomain and host aliases", func(ctx SpecContext) {
		out := outputOf(ctx, ns, "named", "hostname; tail -n 4 /etc/hosts", func(p *corev1.Pod) {
			p.Spec.Hostname = "alpha"
			p.Spec.Subdomain = "group"
			p.Spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"foo.local", "bar.local"}}}
		})
		lines := strings.Split(strings.TrimSpace(out), "\n")
		Expect(lines).To(HaveLen(5), out)
		Expect(lines[0]).To(Equal("alpha"))
		Expect(lines[1]).To(MatchRegexp(`^10\.244\.\d+\.\d+\talpha\.group\.` + ns + `\.svc\.cluster\.local\talpha$`))
		Expect(lines[2:]).To(Equal([]string{"", "# Entries added by HostAliases.", "10.1.2.3\tfoo.local\tbar.local"}))
	})

	It("write /etc/resolv.conf per dnsPolicy", func(ctx SpecContext) {
		Expect(outputOf(ctx, ns, "cluster-first", "cat /etc/resolv.conf", nil)).To(And(
			MatchRegexp(`(?m)^search `+ns+`\.svc\.cluster\.local svc\.cluster\.local cluster\.local\b`),
			MatchRegexp(`(?m)^nameserver 10\.96\.0\.10$`),
			MatchRegexp(`(?m)^options ndots:5$`)))
		def := outputOf(ctx, ns, "default", "cat /etc/resolv.conf", func(p *corev1.Pod) { p.Spec.DNSPolicy = corev1.DNSDefault })
		Expect(def).NotTo(ContainSubstring("cluster.local"))
		Expect(def).To(MatchRegexp(`(?m)^nameserver `))
		Expect(outputOf(ctx, ns, "none", "cat /etc/resolv.conf", func(p *corev1.Pod) {
			p.Spec.DNSPolicy = corev1.DNSNone
			p.Spec.DNSConfig = &corev1.PodDNSConfig{Nameservers: []string{"1.2.3.4"}, Searches: []string{"example.test"},
				Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: ptr.To("2")}, {Name: "edns0"}}}
		})).To(Equal("search example.test\nnameserver 1.2.3.4\noptions ndots:2 edns0\n"))
	})

	It("run a hostNetwork pod with the node's IP and interfaces", func(ctx SpecContext) {
		hostLinks, err := os.ReadDir("/sys/class/net")
		Expect(err).NotTo(HaveOccurred())
		out := outputOf(ctx, ns, "on-host", "ls /sys/class/net", func(p *corev1.Pod) { p.Spec.HostNetwork = true })
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "on-host", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(pod.Status.PodIP).To(Equal(pod.Status.HostIP))
		Expect(pod.Status.PodIPs).To(Equal([]corev1.PodIP{{IP: pod.Status.HostIP}}))
		if testCluster.Keelson {
			// The node's interfaces, not a pod's lo and eth0 only.
			var names []string
			for _, l := range hostLinks {
				if l.Name() != "lo" && !strings.HasPrefix(l.Name(), "veth") {
					names = append(names, l.Name())
				}
			}
			Expect(strings.Fields(out)).To(ContainElements(names), out)
		}
	})
})

var _ = Describe("The kubelet's pod status", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("sets the pod's conditions and reports the container's stop", func(ctx SpecContext) {
		p := shellPod("steady", "sleep 600")
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: busybox, Command: []string{"true"}}}
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		waitForReady(ctx, ns, "steady")
		pod, err := client.CoreV1().Pods(ns).Get(ctx, "steady", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady, corev1.PodScheduled} {
			Expect(podCondition(pod, t).Status).To(Equal(corev1.ConditionTrue), "%s in %+v", t, pod.Status.Conditions)
		}
		Expect(client.CoreV1().Pods(ns).Delete(ctx, "steady", metav1.DeleteOptions{})).To(Succeed())
		Eventually(func() []string { return eventsOf(ctx, ns, "steady") }).WithTimeout(30 * time.Second).Should(ContainElement("Normal Killing Stopping container c"))
	})
})
