package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func configMap(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "test"}}, Data: data}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1.37"}}},
			},
		},
	}
}

var _ = Describe("Create, read, update, delete", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("creates an object with server-set metadata and reads it back", func(ctx SpecContext) {
		created, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("a", map[string]string{"k": "v"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.UID).NotTo(BeEmpty())
		Expect(created.ResourceVersion).NotTo(BeEmpty())
		Expect(created.CreationTimestamp.IsZero()).To(BeFalse())
		Expect(created.ManagedFields).To(HaveLen(1))
		Expect(created.ManagedFields[0].Operation).To(Equal(metav1.ManagedFieldsOperationUpdate))

		got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "a", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"k": "v"}))
		Expect(got.ResourceVersion).To(Equal(created.ResourceVersion))
	})

	It("answers a second create with 409 AlreadyExists", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("dup", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("dup", nil), metav1.CreateOptions{})
		Expect(apierrors.IsAlreadyExists(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`configmaps "dup" already exists`))
	})

	It("answers a read of a missing object with 404 NotFound", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "missing", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
		Expect(err.Error()).To(Equal(`configmaps "missing" not found`))
	})

	It("generates a name from generateName", func(ctx SpecContext) {
		cm := configMap("", nil)
		cm.GenerateName = "gen-"
		created, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Name).To(HavePrefix("gen-"))
		Expect(created.Name).To(HaveLen(len("gen-") + 5))
	})

	It("refuses an update with a stale resourceVersion with 409 Conflict", func(ctx SpecContext) {
		cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("c", map[string]string{"n": "0"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		first := cm.DeepCopy()
		first.Data["n"] = "1"
		_, err = client.CoreV1().ConfigMaps(ns).Update(ctx, first, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		stale := cm.DeepCopy()
		stale.Data["n"] = "2"
		_, err = client.CoreV1().ConfigMaps(ns).Update(ctx, stale, metav1.UpdateOptions{})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again`))
		got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "c", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data["n"]).To(Equal("1"))
	})

	It("applies an update without resourceVersion unconditionally", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("u", map[string]string{"n": "0"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := client.CoreV1().ConfigMaps(ns).Update(ctx, configMap("u", map[string]string{"n": "1"}), metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data["n"]).To(Equal("1"))
		Expect(got.UID).NotTo(BeEmpty())
	})

	It("lets exactly one of two racing writers win, and loses nothing", func(ctx SpecContext) {
		cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("race", map[string]string{}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		const writers = 8
		var wg sync.WaitGroup
		results := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				mine := cm.DeepCopy()
				mine.Data = map[string]string{fmt.Sprintf("w%d", i): "x"}
				_, results[i] = client.CoreV1().ConfigMaps(ns).Update(context.Background(), mine, metav1.UpdateOptions{})
			})
		}
		wg.Wait()
		wins, conflicts := 0, 0
		winner := -1
		for i, err := range results {
			switch {
			case err == nil:
				wins++
				winner = i
			case apierrors.IsConflict(err):
				conflicts++
			default:
				Fail(fmt.Sprintf("unexpected error: %v", err))
			}
		}
		Expect(wins).To(Equal(1))
		Expect(conflicts).To(Equal(writers - 1))
		got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "race", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{fmt.Sprintf("w%d", winner): "x"}))
	})

	It("applies JSON, merge and strategic merge patches", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("p", map[string]string{"a": "1"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "p", types.JSONPatchType, []byte(`[{"op":"add","path":"/data/b","value":"2"}]`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "p", types.MergePatchType, []byte(`{"data":{"a":null,"c":"3"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		got, err := client.CoreV1().ConfigMaps(ns).Patch(ctx, "p", types.StrategicMergePatchType, []byte(`{"metadata":{"labels":{"extra":"yes"}},"data":{"d":"4"}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data).To(Equal(map[string]string{"b": "2", "c": "3", "d": "4"}))
		Expect(got.Labels).To(HaveKeyWithValue("extra", "yes"))

		_, err = client.AppsV1().Deployments(ns).Create(ctx, deployment("web", 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// Strategic merge keys containers by name: the patch changes one container's image in place.
		d, err := client.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","image":"busybox:1.38"}]}}}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Spec.Template.Spec.Containers).To(HaveLen(1))
		Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("busybox:1.38"))
		Expect(d.Generation).To(Equal(int64(2)))
	})

	It("refuses a JSON patch whose test fails with 422 and changes nothing", func(ctx SpecContext) {
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("t", map[string]string{"a": "1"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "t", types.JSONPatchType,
			[]byte(`[{"op":"test","path":"/data/a","value":"2"},{"op":"replace","path":"/data/a","value":"3"}]`), metav1.PatchOptions{})
		Expect(err).To(HaveOccurred())
		Expect(apierrors.ReasonForError(err)).To(Equal(metav1.StatusReasonInvalid))
		got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "t", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data["a"]).To(Equal("1"))
	})

	It("deletes an object and a collection by label", func(ctx SpecContext) {
		for i := range 3 {
			_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap(fmt.Sprintf("d%d", i), nil), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		other := configMap("keep", nil)
		other.Labels = map[string]string{"app": "other"}
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, other, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "d0", metav1.DeleteOptions{})).To(Succeed())
		_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "d0", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
		Expect(client.CoreV1().ConfigMaps(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=test"})).To(Succeed())
		list, err := client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		names := []string{}
		for _, cm := range list.Items {
			names = append(names, cm.Name)
		}
		Expect(names).To(ContainElement("keep"))
		Expect(names).NotTo(ContainElements("d1", "d2"))
	})

	It("honours delete preconditions", func(ctx SpecContext) {
		cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("pre", nil), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		err = client.CoreV1().ConfigMaps(ns).Delete(ctx, "pre", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("not-the-uid"))}})
		Expect(apierrors.IsConflict(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(Equal(`Operation cannot be fulfilled on ConfigMap "pre": the UID in the precondition (not-the-uid) does not match the UID in record (` +
			string(cm.UID) + `). The object might have been deleted and then recreated`))
		err = client.CoreV1().ConfigMaps(ns).Delete(ctx, "pre", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: ptr.To("1")}})
		Expect(err.Error()).To(Equal(`Operation cannot be fulfilled on ConfigMap "pre": the ResourceVersion in the precondition (1) does not match the ResourceVersion in record (` +
			cm.ResourceVersion + `). The object might have been modified`))
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "pre", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion}})).To(Succeed())
	})

	It("keeps an object with finalizers until the last one is removed", func(ctx SpecContext) {
		cm := configMap("fin", nil)
		cm.Finalizers = []string{"example.com/hold"}
		_, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "fin", metav1.DeleteOptions{})).To(Succeed())
		got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "fin", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.DeletionTimestamp).NotTo(BeNil())
		Expect(got.DeletionGracePeriodSeconds).To(Equal(ptr.To[int64](0)))
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "fin", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "fin", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue(), "%v", err)
	})

	It("records the orphan and foreground propagation policies as finalizers", func(ctx SpecContext) {
		for name, policy := range map[string]metav1.DeletionPropagation{"orphan": metav1.DeletePropagationOrphan, "foreground": metav1.DeletePropagationForeground} {
			_, err := client.AppsV1().Deployments(ns).Create(ctx, deployment(name, 1), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			// The delete answers with the object as marked: a garbage collector may finish the
			// deletion at once afterwards, so the answer is what to look at.
			body := []byte(`{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"` + string(policy) + `"}`)
			code, resp := raw(ctx, "DELETE", "/apis/apps/v1/namespaces/"+ns+"/deployments/"+name, "application/json", body)
			Expect(code).To(Equal(200))
			var got appsv1.Deployment
			Expect(json.Unmarshal(resp, &got)).To(Succeed())
			Expect(got.Kind).To(Equal("Deployment"))
			Expect(got.DeletionTimestamp).NotTo(BeNil())
			want := metav1.FinalizerOrphanDependents
			if policy == metav1.DeletePropagationForeground {
				want = metav1.FinalizerDeleteDependents
			}
			Expect(got.Finalizers).To(ConsistOf(want))
		}
	})

	It("stores nothing on a dry run, whatever the write", func(ctx SpecContext) {
		dry := []string{metav1.DryRunAll}
		created, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("dry", nil), metav1.CreateOptions{DryRun: dry})
		Expect(err).NotTo(HaveOccurred())
		Expect(created.Name).To(Equal("dry"))
		_, err = client.CoreV1().ConfigMaps(ns).Get(ctx, "dry", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())

		cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, configMap("real", map[string]string{"v": "1"}), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		changed := cm.DeepCopy()
		changed.Data["v"] = "2"
		updated, err := client.CoreV1().ConfigMaps(ns).Update(ctx, changed, metav1.UpdateOptions{DryRun: dry})
		Expect(err).NotTo(HaveOccurred())
		Expect(updated.Data["v"]).To(Equal("2"))
		patched, err := client.CoreV1().ConfigMaps(ns).Patch(ctx, "real", types.MergePatchType, []byte(`{"data":{"v":"3"}}`), metav1.PatchOptions{DryRun: dry})
		Expect(err).NotTo(HaveOccurred())
		Expect(patched.Data["v"]).To(Equal("3"))
		Expect(client.CoreV1().ConfigMaps(ns).Delete(ctx, "real", metav1.DeleteOptions{DryRun: dry})).To(Succeed())
		got, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "real", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Data["v"]).To(Equal("1"))
		Expect(got.ResourceVersion).To(Equal(cm.ResourceVersion))

		// A dry-run Service allocates no cluster IP: the same address is still free afterwards.
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "dry-svc"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}
		_, err = client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{DryRun: dry})
		Expect(err).NotTo(HaveOccurred())
		_, err = client.CoreV1().Services(ns).Get(ctx, "dry-svc", metav1.GetOptions{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})
})
