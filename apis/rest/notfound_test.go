package rest_test

import (
	"context"
	"testing"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
)

// A group nothing serves answers a plain 404, as upstream's, so clients name the resource they
// asked for in the error; an unknown resource of a served group answers a Status.
func TestNotFoundPaths(t *testing.T) {
	cfg := apiservertest.Start(t, apiserver.Options{})
	ctx := context.Background()
	_, err := metricsclient.NewForConfigOrDie(cfg).MetricsV1beta1().PodMetricses("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsNotFound(err) || err.Error() != "the server could not find the requested resource (get pods.metrics.k8s.io)" {
		t.Errorf("pods.metrics.k8s.io: %v", err)
	}
	res := kubernetes.NewForConfigOrDie(cfg).CoreV1().RESTClient().Get().AbsPath("/api/v1/nosuchthings").Do(ctx)
	if err := res.Error(); !apierrors.IsNotFound(err) || err.Error() != "the server could not find the requested resource" {
		t.Errorf("/api/v1/nosuchthings: %v", err)
	}
}
