package strategy

import (
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestValidateSchedule(t *testing.T) {
	for _, tc := range []struct {
		name, schedule string
		ok             bool
	}{
		{"every minute", "* * * * *", true},
		{"steps, ranges and lists", "*/5 1-3,7 1 jan-mar mon-fri", true},
		{"macro", "@hourly", true},
		{"every", "@every 1h30m", true},
		{"too few fields", "* * *", false},
		{"minute out of range", "60 * * * *", false},
		{"bad step", "*/0 * * * *", false},
		{"time zone in schedule", "TZ=UTC * * * * *", false},
		{"unknown macro", "@sometimes", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validateSchedule(tc.schedule); (err == nil) != tc.ok {
				t.Fatalf("validateSchedule(%q) = %v, want ok=%v", tc.schedule, err, tc.ok)
			}
		})
	}
}

func TestValidateJobAndCronJob(t *testing.T) {
	template := func(restart corev1.RestartPolicy) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
			Spec:       corev1.PodSpec{RestartPolicy: restart, DNSPolicy: corev1.DNSClusterFirst, TerminationGracePeriodSeconds: ptrTo(int64(30)), Containers: []corev1.Container{{Name: "c", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePolicy: corev1.TerminationMessageReadFile}}},
		}
	}
	job := func(restart corev1.RestartPolicy) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Spec: batchv1.JobSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}, Template: template(restart)}}
	}
	for _, tc := range []struct {
		name string
		errs field.ErrorList
		want []string
	}{
		{"valid job", validateJob(job(corev1.RestartPolicyNever)), nil},
		{"restart always", validateJob(job(corev1.RestartPolicyAlways)), []string{"spec.template.spec.restartPolicy"}},
		{"cron without schedule", validateCronJob(&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: batchv1.CronJobSpec{
			ConcurrencyPolicy: batchv1.AllowConcurrent, JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(corev1.RestartPolicyOnFailure)}}}}),
			[]string{"spec.schedule"}},
		{"cron with a bad schedule and policy", validateCronJob(&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: batchv1.CronJobSpec{
			Schedule: "61 * * * *", ConcurrencyPolicy: "Sometimes", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template(corev1.RestartPolicyOnFailure)}}}}),
			[]string{"spec.schedule", "spec.concurrencyPolicy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, e := range tc.errs {
				got = append(got, e.Field)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors on %v, want on %v (%v)", got, tc.want, tc.errs)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("errors on %v, want on %v", got, tc.want)
				}
			}
		})
	}
}
