package api

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

var _ = Describe("Pods and their service account", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox:1.37"}},
			Containers:     []corev1.Container{{Name: "c", Image: "busybox:1.37"}}}}
	}

	It("get the default account and a kube-api-access volume mounted in every container", func(ctx SpecContext) {
		created, err := client.CoreV1().Pods(ns).Create(ctx, pod("p"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Spec.ServiceAccountName).To(Equal("default"))
		Expect(created.Spec.Volumes).To(HaveLen(1))
		v := created.Spec.Volumes[0]
		Expect(v.Name).To(MatchRegexp(`^kube-api-access-[a-z0-9]{5}$`))
		Expect(v.Projected).NotTo(BeNil())
		Expect(v.Projected.DefaultMode).To(Equal(ptr.To[int32](0o644)))
		Expect(v.Projected.Sources).To(HaveLen(3))
		Expect(v.Projected.Sources[0].ServiceAccountToken).To(Equal(&corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}))
		Expect(v.Projected.Sources[1].ConfigMap.Name).To(Equal("kube-root-ca.crt"))
		Expect(v.Projected.Sources[1].ConfigMap.Items).To(Equal([]corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}))
		Expect(v.Projected.Sources[2].DownwardAPI.Items).To(Equal([]corev1.DownwardAPIVolumeFile{{Path: "namespace",
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}))
		want := corev1.VolumeMount{Name: v.Name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}
		Expect(created.Spec.InitContainers[0].VolumeMounts).To(ConsistOf(want))
		Expect(created.Spec.Containers[0].VolumeMounts).To(ConsistOf(want))
	})

	It("get no token volume when the pod or its account opts out", func(ctx SpecContext) {
		p := pod("optout")
		p.Spec.AutomountServiceAccountToken = ptr.To(false)
		created, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Spec.Volumes).To(BeEmpty())

		_, err = client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "quiet"},
			AutomountServiceAccountToken: ptr.To(false), ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		p = pod("quiet")
		p.Spec.ServiceAccountName = "quiet"
		created, err = client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Spec.Volumes).To(BeEmpty())
		Expect(created.Spec.ImagePullSecrets).To(Equal([]corev1.LocalObjectReference{{Name: "regcred"}}))
	})

	It("are refused when the named account does not exist", func(ctx SpecContext) {
		p := pod("lost")
		p.Spec.ServiceAccountName = "nobody"
		_, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`pods "lost" is forbidden: error looking up service account ` + ns + `/nobody: serviceaccount "nobody" not found`))
	})
})
