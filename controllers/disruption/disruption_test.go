package disruption_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/controllers/disruption"
	"github.com/keelson/keelson/controllers/manager"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// Evictions older than the deletion timeout are forgotten, newer ones keep their pod out of the
// healthy count, and a DisruptionTarget condition that went stale on a live pod is reset. The
// times are set in the past here rather than waited for.
func TestDisruptedPodsExpireAndStaleConditionsReset(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	const ns = "default"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	long := metav1.NewTime(time.Now().Add(-disruption.DeletionTimeout - time.Minute))
	for _, name := range []string{"p0", "p1", "p2", "stale"} {
		labels := map[string]string{"app": "a"}
		if name == "stale" {
			labels = nil
		}
		p, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		must(err)
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if name == "stale" {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
				Reason: "EvictionByEvictionAPI", Message: "Eviction API: evicting", LastTransitionTime: long})
		}
		_, err = client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		must(err)
	}
	pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "b"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &intstr.IntOrString{IntVal: 1}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}},
		metav1.CreateOptions{})
	must(err)
	recent := metav1.Now()
	pdb.Status.DisruptedPods = map[string]metav1.Time{"p0": long, "p1": recent, "gone": recent}
	_, err = client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	must(err)

	go func() {
		_ = manager.Run(ctx, cfg, manager.Options{LeaseName: "disruption-test", Log: log}, func(c *manager.Context) ([]manager.Controller, error) {
			d, err := disruption.New(c)
			return []manager.Controller{d}, err
		})
	}()

	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "b", metav1.GetOptions{})
		must(err)
		st := got.Status
		_, p1 := st.DisruptedPods["p1"]
		if st.ObservedGeneration == got.Generation && len(st.DisruptedPods) == 1 && p1 &&
			st.CurrentHealthy == 2 && st.DesiredHealthy == 1 && st.ExpectedPods == 3 && st.DisruptionsAllowed == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("budget status: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		p, err := client.CoreV1().Pods(ns).Get(ctx, "stale", metav1.GetOptions{})
		must(err)
		var target *corev1.PodCondition
		for i := range p.Status.Conditions {
			if p.Status.Conditions[i].Type == corev1.DisruptionTarget {
				target = &p.Status.Conditions[i]
			}
		}
		if target != nil && target.Status == corev1.ConditionFalse {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stale DisruptionTarget condition: %+v", target)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Events are sent in the background: wait for the one about p0.
	for {
		events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=p0"})
		must(err)
		found := false
		for _, e := range events.Items {
			found = found || e.Reason == "NotDeleted" && e.Type == corev1.EventTypeWarning && e.Message == "Pod was expected by PDB default/default to be deleted but it wasn't"
		}
		if found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no NotDeleted event on p0: %+v", events.Items)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
