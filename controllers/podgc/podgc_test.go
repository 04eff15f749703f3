package podgc_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/controllers/manager"
	"github.com/keelson/keelson/controllers/podgc"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The collector keeps the newest terminated pods up to its threshold, and fails unscheduled pods
// that are being deleted. It runs here alone against a real API server, with a threshold of 2.
func TestTerminatedThresholdAndUnscheduledTerminating(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	pods := client.CoreV1().Pods("default")

	newPod := func(name string, finalizers ...string) *corev1.Pod {
		p, err := pods.Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: finalizers},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i := range 4 {
		p := newPod(fmt.Sprintf("done-%d", i))
		p.Status.Phase = corev1.PodSucceeded
		if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	newPod("pending")
	newPod("held", "keelson.test/hold")
	if err := pods.Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	go func() {
		_ = manager.Run(ctx, cfg, manager.Options{LeaseName: "podgc-test", Log: log}, func(c *manager.Context) ([]manager.Controller, error) {
			gc, err := podgc.New(c, 2)
			return []manager.Controller{gc}, err
		})
	}()

	exists := func(name string) bool {
		_, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for exists("done-0") || exists("done-1") {
		if time.Now().After(deadline) {
			t.Fatal("the oldest terminated pods beyond the threshold were not deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, name := range []string{"done-2", "done-3", "pending"} {
		if !exists(name) {
			t.Errorf("pod %s was deleted; only the oldest terminated pods beyond the threshold should be", name)
		}
	}
	for {
		held, err := pods.Get(ctx, "held", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if held.Status.Phase == corev1.PodFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unscheduled terminating pod is %s, not Failed", held.Status.Phase)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
