package history

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func testSet() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](3),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
			},
		},
	}
}

// TestTemplatePatch pins the bytes kubectl compares a revision with: only spec.template, marked
// to replace, keys sorted.
func TestTemplatePatch(t *testing.T) {
	got, err := TemplatePatch(testSet())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"busybox:1","name":"c","resources":{}}]}}}}`
	if string(got) != want {
		t.Errorf("patch\n got %s\nwant %s", got, want)
	}
	if _, err := TemplatePatch(&corev1.Pod{}); err == nil {
		t.Error("a kind without spec.template gave a patch")
	}
}

func TestNew(t *testing.T) {
	set := testSet()
	data, err := TemplatePatch(set)
	if err != nil {
		t.Fatal(err)
	}
	gvk := appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	a := New(set, gvk, set.Spec.Template.Labels, data, 1, ptr.To[int32](0))
	b := New(set, gvk, set.Spec.Template.Labels, data, 2, ptr.To[int32](0))
	c := New(set, gvk, set.Spec.Template.Labels, data, 1, ptr.To[int32](1))
	cases := []struct {
		name string
		ok   bool
	}{
		{"named for the hash", a.Name == "web-"+a.Labels[HashLabel]},
		{"keeps the template labels", a.Labels["app"] == "web"},
		{"owned by its controller", metav1.IsControlledBy(a, set) && a.Namespace == "ns"},
		{"same data, same name whatever the revision", a.Name == b.Name && Equal(a, b)},
		{"a collision count changes the name", a.Name != c.Name},
		{"the template labels are copied, not shared", len(set.Spec.Template.Labels) == 1},
	}
	for _, tc := range cases {
		if !tc.ok {
			t.Errorf("%s: %+v", tc.name, a.ObjectMeta)
		}
	}
	revs := []*appsv1.ControllerRevision{b, a}
	Sort(revs)
	if revs[0] != a || MaxRevision(revs) != 2 || len(FindEqual(revs, c)) != 2 {
		t.Errorf("sort, max or find went wrong: %v %d", []int64{revs[0].Revision, revs[1].Revision}, MaxRevision(revs))
	}
}

func TestTemplateHash(t *testing.T) {
	tmpl := testSet().Spec.Template
	h0 := TemplateHash(&tmpl, nil)
	if h0 != TemplateHash(tmpl.DeepCopy(), nil) {
		t.Error("the hash of equal templates differs")
	}
	if h0 == TemplateHash(&tmpl, ptr.To[int32](1)) {
		t.Error("a collision count does not change the hash")
	}
	tmpl.Spec.Containers[0].Image = "busybox:2"
	if h0 == TemplateHash(&tmpl, nil) {
		t.Error("a new image does not change the hash")
	}
}
