package controllerruntime

import (
	"context"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
)

var _ = Describe("The manager's cache", func() {
	It("fills every informer with a streaming list (WatchList with sendInitialEvents) and no plain list", func() {
		GinkgoWriter.Printf("the manager's requests:\n%s", requests)
		for _, path := range []string{"/api/v1/configmaps", "/api/v1/secrets"} {
			rs := requests.to(path)
			var streamed bool
			for _, r := range rs {
				Expect(r.watch()).To(BeTrue(),
					"the informer fell back to a plain list of %s, as client-go does when the streaming list fails; the manager's requests:\n%s", path, requests)
				q := r.url.Query()
				if q.Get("sendInitialEvents") == "true" {
					Expect(q.Get("allowWatchBookmarks")).To(Equal("true"), "%s", r)
					Expect(q.Get("resourceVersionMatch")).To(Equal("NotOlderThan"), "%s", r)
					Expect(r.err).NotTo(HaveOccurred())
					Expect(r.code).To(Equal(200), "%s", r)
					streamed = true
				}
			}
			Expect(streamed).To(BeTrue(), "no streaming list of %s; the manager's requests:\n%s", path, requests)
		}
	})

	It("has synced the informers of the reconciler's watches", func(ctx SpecContext) {
		for _, obj := range []ctrlclient.Object{&corev1.ConfigMap{}, &corev1.Secret{}} {
			informer, err := mgr.GetCache().GetInformer(ctx, obj)
			Expect(err).NotTo(HaveOccurred())
			Expect(informer.HasSynced()).To(BeTrue(), "%T", obj)
		}
	})
})

var _ = Describe("A controller-runtime reconciler", func() {
	var ns string

	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		DeferCleanup(func() {
			Expect(reconciler.errorsIn(ns)).To(BeEmpty(), "the reconciler met errors; the manager's requests:\n%s", requests)
		})
	})

	// newConfigMap creates a ConfigMap in the spec's namespace.
	newConfigMap := func(ctx context.Context, name string, labels, data map[string]string) *corev1.ConfigMap {
		GinkgoHelper()
		cm, err := client.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Data:       data,
		}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		return cm
	}

	// derivedData returns the derived Secret's data as strings, or an error while it is missing.
	derivedData := func(ctx context.Context, name string) (map[string]string, error) {
		s, err := client.CoreV1().Secrets(ns).Get(ctx, name+derivedSuffix, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}

	It("creates a Secret with the ConfigMap's data, controlled by the ConfigMap", func(ctx SpecContext) {
		cm := newConfigMap(ctx, "settings", map[string]string{"derive": "yes"}, map[string]string{"a": "1", "b": "two"})
		Eventually(ctx, derivedData).WithArguments("settings").Should(Equal(map[string]string{"a": "1", "b": "two"}))

		s, err := client.CoreV1().Secrets(ns).Get(ctx, "settings-derived", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(s.Type).To(Equal(corev1.SecretTypeOpaque))
		Expect(s.OwnerReferences).To(Equal([]metav1.OwnerReference{{
			APIVersion:         "v1",
			Kind:               "ConfigMap",
			Name:               "settings",
			UID:                cm.UID,
			Controller:         ptr.To(true),
			BlockOwnerDeletion: ptr.To(true),
		}}))
	})

	It("records the reconciler as the Apply field manager of what it wrote", func(ctx SpecContext) {
		cm := newConfigMap(ctx, "owned", map[string]string{"derive": "yes"}, map[string]string{"key": "value"})
		Eventually(ctx, derivedData).WithArguments("owned").Should(HaveKey("key"))

		s, err := client.CoreV1().Secrets(ns).Get(ctx, "owned-derived", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(s.ManagedFields).To(HaveLen(1), "managedFields: %+v", s.ManagedFields)
		mf := s.ManagedFields[0]
		Expect(mf.Manager).To(Equal(fieldOwner))
		Expect(mf.Operation).To(Equal(metav1.ManagedFieldsOperationApply))
		Expect(mf.APIVersion).To(Equal("v1"))
		Expect(mf.FieldsType).To(Equal("FieldsV1"))
		Expect(mf.Subresource).To(BeEmpty())
		Expect(mf.Time).NotTo(BeNil())
		Expect(mf.FieldsV1).NotTo(BeNil())
		var fields map[string]any
		Expect(json.Unmarshal(mf.FieldsV1.Raw, &fields)).To(Succeed())
		Expect(fields).To(Equal(map[string]any{
			"f:data": map[string]any{"f:key": map[string]any{}},
			"f:metadata": map[string]any{
				"f:ownerReferences": map[string]any{
					`k:{"uid":"` + string(cm.UID) + `"}`: map[string]any{},
				},
			},
		}), "fieldsV1: %s", mf.FieldsV1.Raw)
	})

	It("carries changes of the ConfigMap to the Secret, and drops keys the ConfigMap drops", func(ctx SpecContext) {
		newConfigMap(ctx, "changing", map[string]string{"derive": "yes"}, map[string]string{"keep": "1", "change": "old", "drop": "x"})
		Eventually(ctx, derivedData).WithArguments("changing").Should(Equal(map[string]string{"keep": "1", "change": "old", "drop": "x"}))

		cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "changing", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		cm.Data = map[string]string{"keep": "1", "change": "new", "add": "y"}
		_, err = client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(ctx, derivedData).WithArguments("changing").Should(Equal(map[string]string{"keep": "1", "change": "new", "add": "y"}))

		patch := []byte(`{"data":{"change":"patched"}}`)
		_, err = client.CoreV1().ConfigMaps(ns).Patch(ctx, "changing", types.MergePatchType, patch, metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(ctx, derivedData).WithArguments("changing").Should(Equal(map[string]string{"keep": "1", "change": "patched", "add": "y"}))
	})

	It("recreates the Secret when it is deleted", func(ctx SpecContext) {
		newConfigMap(ctx, "recreated", map[string]string{"derive": "yes"}, map[string]string{"k": "v"})
		Eventually(ctx, derivedData).WithArguments("recreated").Should(Equal(map[string]string{"k": "v"}))
		first, err := client.CoreV1().Secrets(ns).Get(ctx, "recreated-derived", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())

		Expect(client.CoreV1().Secrets(ns).Delete(ctx, "recreated-derived", metav1.DeleteOptions{})).To(Succeed())
		Eventually(ctx, func(ctx context.Context) (types.UID, error) {
			s, err := client.CoreV1().Secrets(ns).Get(ctx, "recreated-derived", metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			return s.UID, nil
		}).Should(And(Not(BeEmpty()), Not(Equal(first.UID))))
		Eventually(ctx, derivedData).WithArguments("recreated").Should(Equal(map[string]string{"k": "v"}))
	})

	It("serves the derived Secret from the manager's cache", func(ctx SpecContext) {
		newConfigMap(ctx, "cached", map[string]string{"derive": "yes"}, map[string]string{"k": "v"})
		cached := mgr.GetClient()
		var first corev1.Secret
		Eventually(ctx, func(ctx context.Context) (map[string][]byte, error) {
			err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cached-derived"}, &first)
			return first.Data, err
		}).Should(Equal(map[string][]byte{"k": []byte("v")}))

		Expect(client.CoreV1().Secrets(ns).Delete(ctx, "cached-derived", metav1.DeleteOptions{})).To(Succeed())
		// The cache sees the deletion and then the recreation through its watch.
		Eventually(ctx, func(ctx context.Context) (types.UID, error) {
			var s corev1.Secret
			err := cached.Get(ctx, types.NamespacedName{Namespace: ns, Name: "cached-derived"}, &s)
			return s.UID, err
		}).Should(And(Not(BeEmpty()), Not(Equal(first.UID))))
	})

	It("leaves ConfigMaps without the label alone", func(ctx SpecContext) {
		newConfigMap(ctx, "plain", nil, map[string]string{"k": "v"})
		newConfigMap(ctx, "other", map[string]string{"derive": "no"}, map[string]string{"k": "v"})
		// A labelled ConfigMap created after them is derived; by then the others have been seen.
		newConfigMap(ctx, "marker", map[string]string{"derive": "yes"}, map[string]string{"k": "v"})
		Eventually(ctx, derivedData).WithArguments("marker").Should(HaveKey("k"))
		Consistently(ctx, func(ctx context.Context) bool {
			_, errPlain := client.CoreV1().Secrets(ns).Get(ctx, "plain-derived", metav1.GetOptions{})
			_, errOther := client.CoreV1().Secrets(ns).Get(ctx, "other-derived", metav1.GetOptions{})
			return apierrors.IsNotFound(errPlain) && apierrors.IsNotFound(errOther)
		}).WithTimeout(time.Second).Should(BeTrue())
	})
})
