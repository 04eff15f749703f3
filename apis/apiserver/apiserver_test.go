package apiserver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/registry/etcd"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// start runs an API server in this process and returns a client for it.
func start(t *testing.T, opts apiserver.Options) kubernetes.Interface {
	return kubernetes.NewForConfigOrDie(apiservertest.Start(t, opts))
}

// The API server runs on an etcd it did not start, with upstream's keys, and keeps its objects
// when it restarts on the same etcd.
func TestExternalEtcd(t *testing.T) {
	external, err := etcd.StartEmbedded(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer external.Close()
	c := start(t, apiserver.Options{EtcdServers: []string{external.ClientURL}})
	ctx := context.Background()
	if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ext"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, err := external.Client.Get(ctx, "/registry/configmaps/default/ext")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("object not in the external etcd: %v", err)
	}
	second := start(t, apiserver.Options{EtcdServers: []string{external.ClientURL}})
	if _, err := second.CoreV1().ConfigMaps("default").Get(ctx, "ext", metav1.GetOptions{}); err != nil {
		t.Fatalf("a second API server on the same etcd does not see the object: %v", err)
	}
}

// Once etcd history is compacted, a continue token from before answers 410 Expired with
// upstream's message.
func TestContinueTokenExpiresAfterCompaction(t *testing.T) {
	c := start(t, apiserver.Options{CompactionInterval: 100 * time.Millisecond})
	ctx := context.Background()
	for i := range 4 {
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("c", i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Writes move the revision on, so that a later compaction covers the first page's.
		if _, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "filler-"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, err := c.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 2, Continue: first.Continue})
		if apierrors.IsResourceExpired(err) {
			if status := err.(apierrors.APIStatus).Status(); status.Code != 410 {
				t.Fatalf("code %d, want 410", status.Code)
			}
			if got := err.Error(); got[:60] != "The provided continue parameter is too old to display a cons" {
				t.Fatalf("message %q", got)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the continue token never expired")
		}
	}
}
