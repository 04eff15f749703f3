package kubelet

import (
	"context"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// TestProjectedTokenIsRenewed checks that a projected service-account token is kept until 80%
// of its life has passed and then requested again, as upstream's token manager does.
func TestProjectedTokenIsRenewed(t *testing.T) {
	cfg := apiservertest.Start(t, apiserver.Options{})
	apiservertest.DefaultServiceAccount(t, cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	pod, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false), Containers: []corev1.Container{{Name: "c", Image: "busybox:1.37"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := &Kubelet{client: client, tokens: map[string]cachedToken{}}
	src := &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](600)}
	token := func() string {
		t.Helper()
		files, err := k.tokenFile(ctx, pod, src)
		if err != nil {
			t.Fatal(err)
		}
		return string(files["token"].data)
	}
	first := token()
	if first == "" || token() != first {
		t.Fatalf("a fresh token is not kept")
	}
	key := string(pod.UID) + "//token"
	renewAt := k.tokens[key].renewAt
	if want := time.Now().Add(480 * time.Second); renewAt.Before(want.Add(-10*time.Second)) || renewAt.After(want.Add(10*time.Second)) {
		t.Fatalf("renewal at %v, want about %v (80%% of 600 s)", renewAt, want)
	}
	// Once its renewal time has come, the next sync gets a new token.
	k.tokens[key] = cachedToken{token: first, renewAt: time.Now().Add(-time.Second)}
	if second := token(); second == first {
		t.Fatalf("the token was not renewed")
	}
}
