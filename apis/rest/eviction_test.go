package rest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestEvictionChargesTheBudget runs evictions against a budget whose status the test writes
// itself (there is no disruption controller here): a budget the controller has not observed yet
// and one with no disruption left are refused with upstream's 429s, and an allowed eviction is
// recorded in the budget before the pod goes.
func TestEvictionChargesTheBudget(t *testing.T) {
	cfg := apiservertest.Start(t, apiserver.Options{})
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	const ns = "evict"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	// No service account controller runs here: the pod's account is made by hand.
	_, err = client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	must(err)
	_, err = client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"app": "a"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	must(err)
	_, err = client.CoreV1().Pods(ns).Patch(ctx, "p", types.StrategicMergePatchType,
		[]byte(`{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}`), metav1.PatchOptions{}, "status")
	must(err)
	pdb, err := client.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "b"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &intstr.IntOrString{IntVal: 0}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "a"}}}},
		metav1.CreateOptions{})
	must(err)

	httpClient, err := rest.HTTPClientFor(cfg)
	must(err)
	// evict posts a policy/v1beta1 Eviction (upstream accepts both versions) and returns the
	// answer's code, Retry-After header and Status.
	evict := func() (int, string, metav1.Status) {
		t.Helper()
		body := `{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"p","namespace":"` + ns + `"}}`
		resp, err := httpClient.Post(cfg.Host+"/api/v1/namespaces/"+ns+"/pods/p/eviction", "application/json", strings.NewReader(body))
		must(err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var st metav1.Status
		must(json.Unmarshal(b, &st))
		return resp.StatusCode, resp.Header.Get("Retry-After"), st
	}

	code, retry, st := evict()
	if code != http.StatusTooManyRequests || retry != "10" || st.Message != "Cannot evict pod as it would violate the pod's disruption budget." ||
		len(st.Details.Causes) != 1 || st.Details.Causes[0] != (metav1.StatusCause{Type: policyv1.DisruptionBudgetCause, Message: "The disruption budget b is still being processed by the server."}) {
		t.Fatalf("unobserved budget: %d (Retry-After %q) %+v", code, retry, st)
	}

	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1}
	pdb, err = client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	must(err)
	code, retry, st = evict()
	if code != http.StatusTooManyRequests || retry != "" || st.Reason != metav1.StatusReasonTooManyRequests ||
		len(st.Details.Causes) != 1 || st.Details.Causes[0].Message != "The disruption budget b needs 1 healthy pods and has 1 currently" {
		t.Fatalf("exhausted budget: %d (Retry-After %q) %+v", code, retry, st)
	}

	pdb.Status.DesiredHealthy, pdb.Status.DisruptionsAllowed = 0, 1
	_, err = client.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx, pdb, metav1.UpdateOptions{})
	must(err)
	code, _, st = evict()
	if code != http.StatusCreated || st.Status != metav1.StatusSuccess || st.Code != http.StatusCreated {
		t.Fatalf("allowed eviction: %d %+v", code, st)
	}
	got, err := client.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "b", metav1.GetOptions{})
	must(err)
	if _, ok := got.Status.DisruptedPods["p"]; !ok || got.Status.DisruptionsAllowed != 0 {
		t.Fatalf("budget after the eviction: %+v", got.Status)
	}
	if len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Reason != policyv1.InsufficientPodsReason || got.Status.Conditions[0].Status != metav1.ConditionFalse {
		t.Fatalf("conditions after the eviction: %+v", got.Status.Conditions)
	}
	if _, err := client.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the evicted pod: %v", err)
	}
}
