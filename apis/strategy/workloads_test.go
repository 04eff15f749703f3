package strategy

import (
	"testing"

	"github.com/keelson/keelson/apis/catalogue"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDaemonSetTemplateGeneration pins upstream's deprecated.daemonset.template.generation: 1 on
// create whatever the client sent, one more on each template change, kept otherwise.
func TestDaemonSetTemplateGeneration(t *testing.T) {
	res := catalogue.New(catalogue.Builtin()).Lookup(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"})
	s := For(res, "")
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{appsv1.DeprecatedTemplateGeneration: "7"}},
		Spec: appsv1.DaemonSetSpec{Template: testTemplate()}}
	s.PrepareForCreate(ds)
	gen := func(ds *appsv1.DaemonSet) string { return ds.Annotations[appsv1.DeprecatedTemplateGeneration] }
	if gen(ds) != "1" {
		t.Fatalf("created: template generation %q, want 1", gen(ds))
	}
	cases := []struct {
		name   string
		change func(ds *appsv1.DaemonSet)
		want   string
	}{
		{"unchanged template", func(ds *appsv1.DaemonSet) { ds.Spec.MinReadySeconds = 3 }, "1"},
		{"client sets the annotation", func(ds *appsv1.DaemonSet) { ds.Annotations[appsv1.DeprecatedTemplateGeneration] = "9" }, "1"},
		{"new image", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Spec.Containers[0].Image = "nginx:2" }, "2"},
		{"new label", func(ds *appsv1.DaemonSet) { ds.Spec.Template.Labels["extra"] = "y" }, "2"},
	}
	t.Run("status write", func(t *testing.T) {
		upd := ds.DeepCopy()
		upd.Annotations[appsv1.DeprecatedTemplateGeneration] = "5"
		upd.Spec.Template.Spec.Containers[0].Image = "nginx:2"
		For(res, "status").PrepareForUpdate(upd, ds)
		if gen(upd) != "1" {
			t.Errorf("template generation %q, want 1", gen(upd))
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			upd := ds.DeepCopy()
			tc.change(upd)
			s.PrepareForUpdate(upd, ds)
			if gen(upd) != tc.want {
				t.Errorf("template generation %q, want %q", gen(upd), tc.want)
			}
		})
	}
}
