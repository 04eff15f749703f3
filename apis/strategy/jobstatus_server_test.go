package strategy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// A client that writes a Job's status sees upstream's answers: Complete alone is refused with
// upstream's cause, and the two steps (SuccessCriteriaMet, then Complete with completionTime) pass.
func TestJobStatusThroughTheServer(t *testing.T) {
	ctx := context.Background()
	jobs := kubernetes.NewForConfigOrDie(apiservertest.Start(t, apiserver.Options{})).BatchV1().Jobs("default")
	job, err := jobs.Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	job.Status = batchv1.JobStatus{StartTime: &now, CompletionTime: &now, Succeeded: 1,
		Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
	_, err = jobs.UpdateStatus(ctx, job, metav1.UpdateOptions{})
	var status *apierrors.StatusError
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || len(status.ErrStatus.Details.Causes) != 1 ||
		status.ErrStatus.Details.Causes[0].Field != "status.conditions" ||
		status.ErrStatus.Details.Causes[0].Message != "Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition" {
		t.Fatalf("Complete alone: %v", err)
	}

	job.Status.CompletionTime = nil
	job.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now,
		Reason: batchv1.JobReasonCompletionsReached}}
	if job, err = jobs.UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("SuccessCriteriaMet: %v", err)
	}
	job.Status.CompletionTime = &now
	job.Status.Conditions = append(job.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue,
		LastTransitionTime: now, Reason: batchv1.JobReasonCompletionsReached})
	if job, err = jobs.UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	job.Status.Conditions = job.Status.Conditions[:1]
	job.Status.CompletionTime = nil
	if _, err = jobs.UpdateStatus(ctx, job, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("taking Complete back: %v", err)
	}
	if job.Spec.Suspend == nil || ptr.Deref(job.Spec.Parallelism, 0) != 1 {
		t.Fatalf("spec changed: %+v", job.Spec)
	}
}
