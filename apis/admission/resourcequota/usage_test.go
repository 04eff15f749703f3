package resourcequota

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

func list(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func rendered(l corev1.ResourceList) map[string]string {
	out := map[string]string{}
	for n, q := range l {
		out[string(n)] = q.String()
	}
	return out
}

func TestPodUsage(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	now := time.Now()
	cases := []struct {
		name string
		pod  corev1.Pod
		want map[string]string
	}{
		{"best effort", corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}},
			map[string]string{"count/pods": "1", "pods": "1"}},
		{"containers add up, init containers at least, sidecars alongside", corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{
				{Name: "side", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: list("cpu", "100m")}},
				{Name: "init", Resources: corev1.ResourceRequirements{Requests: list("cpu", "2", "memory", "1Gi")}},
			},
			Containers: []corev1.Container{
				{Name: "a", Resources: corev1.ResourceRequirements{Requests: list("cpu", "250m", "memory", "64Mi"), Limits: list("memory", "128Mi")}},
				{Name: "b", Resources: corev1.ResourceRequirements{Requests: list("cpu", "250m", "nvidia.com/gpu", "1")}},
			},
		}}, map[string]string{"count/pods": "1", "pods": "1", "cpu": "2100m", "requests.cpu": "2100m", "memory": "1Gi",
			"requests.memory": "1Gi", "limits.memory": "128Mi", "requests.nvidia.com/gpu": "1"}},
		{"finished pods hold only their count", corev1.Pod{
			Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Resources: corev1.ResourceRequirements{Requests: list("cpu", "1")}}}},
			Status: corev1.PodStatus{Phase: corev1.PodSucceeded}},
			map[string]string{"count/pods": "1"}},
		{"pods past their deletion grace hold only their count", corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &metav1.Time{Time: now.Add(-time.Minute)}, DeletionGracePeriodSeconds: ptr.To[int64](30)},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}}}},
			map[string]string{"count/pods": "1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := rendered(For(podsGR).Usage(&tc.pod, now))
			if len(got) != len(tc.want) {
				t.Fatalf("usage %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
				}
			}
		})
	}
}

func TestConstraintsNameMissingResourcesAsUpstream(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{
		{Name: "b", Resources: corev1.ResourceRequirements{Requests: list("cpu", "1")}},
		{Name: "a"},
	}}}
	err := For(podsGR).Constraints([]corev1.ResourceName{"pods", "limits.cpu", "requests.cpu", "requests.storage"}, pod)
	want := "must specify limits.cpu for: a,b; requests.cpu for: a"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestMatchingAndScopes(t *testing.T) {
	ev := For(podsGR)
	got := ev.Matching([]corev1.ResourceName{"pods", "services", "requests.cpu", "requests.storage", "requests.example.com/dongle", "hugepages-2Mi", "count/pods", "count/secrets"})
	want := []corev1.ResourceName{"pods", "requests.cpu", "requests.example.com/dongle", "hugepages-2Mi", "count/pods"}
	if len(got) != len(want) {
		t.Fatalf("matching %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("matching %v, want %v", got, want)
		}
	}
	pod := &corev1.Pod{Spec: corev1.PodSpec{PriorityClassName: "high", ActiveDeadlineSeconds: ptr.To[int64](5), Containers: []corev1.Container{{Name: "a"}}}}
	for _, tc := range []struct {
		req  corev1.ScopedResourceSelectorRequirement
		want bool
	}{
		{corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopeTerminating, Operator: corev1.ScopeSelectorOpExists}, true},
		{corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopeNotTerminating, Operator: corev1.ScopeSelectorOpExists}, false},
		{corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopeBestEffort, Operator: corev1.ScopeSelectorOpExists}, true},
		{corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high", "mid"}}, true},
		{corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpNotIn, Values: []string{"high"}}, false},
		{corev1.ScopedResourceSelectorRequirement{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpDoesNotExist}, false},
	} {
		if got, err := ev.MatchesScopes(pod, []corev1.ScopedResourceSelectorRequirement{tc.req}); err != nil || got != tc.want {
			t.Errorf("%s %s %v: got %v (%v), want %v", tc.req.ScopeName, tc.req.Operator, tc.req.Values, got, err, tc.want)
		}
	}
	// Objects other than pods fall under no scoped quota.
	if ok, _ := For(schema.GroupResource{Resource: "configmaps"}).MatchesScopes(&corev1.ConfigMap{},
		[]corev1.ScopedResourceSelectorRequirement{{ScopeName: corev1.ResourceQuotaScopeBestEffort, Operator: corev1.ScopeSelectorOpExists}}); ok {
		t.Error("a configmap matched a BestEffort scope")
	}
}

// memQuotas is an in-memory Quotas whose Update is a compare-and-swap under a lock, as etcd's.
type memQuotas struct {
	mu sync.Mutex
	q  *corev1.ResourceQuota
}

func (m *memQuotas) List(context.Context, string) ([]*corev1.ResourceQuota, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []*corev1.ResourceQuota{m.q.DeepCopy()}, nil
}

func (m *memQuotas) Update(_ context.Context, _, _ string, charge func(*corev1.ResourceQuota) (bool, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := m.q.DeepCopy()
	changed, err := charge(next)
	if err == nil && changed {
		m.q = next
	}
	return err
}

func TestAdmitChargesAndRefusesAsUpstream(t *testing.T) {
	store := &memQuotas{q: &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "q", Namespace: "ns"},
		Status:     corev1.ResourceQuotaStatus{Hard: list("configmaps", "2", "pods", "5"), Used: list("configmaps", "1", "pods", "0")},
	}}
	a := New(store)
	cms := schema.GroupResource{Resource: "configmaps"}
	if err := a.Admit(context.Background(), cms, "ns", "one", &corev1.ConfigMap{}, true); err != nil {
		t.Fatal(err)
	}
	if used := store.q.Status.Used[corev1.ResourceConfigMaps]; used.String() != "1" {
		t.Fatalf("a dry run charged the quota: %s", used.String())
	}
	if err := a.Admit(context.Background(), cms, "ns", "one", &corev1.ConfigMap{}, false); err != nil {
		t.Fatal(err)
	}
	err := a.Admit(context.Background(), cms, "ns", "two", &corev1.ConfigMap{}, false)
	want := `configmaps "two" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=2, limited: configmaps=2`
	if !apierrors.IsForbidden(err) || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if got := rendered(store.q.Status.Used); got["configmaps"] != "2" || got["pods"] != "0" {
		t.Fatalf("used %v", got)
	}
}
