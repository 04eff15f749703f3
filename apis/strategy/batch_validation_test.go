package strategy

import (
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// Job status writes follow upstream's rules with managedBy GA: the terminal conditions come in
// their two steps, with the times and counters that go with them.
func TestValidateJobStatusUpdate(t *testing.T) {
	now := metav1.Now()
	later := metav1.NewTime(now.Add(time.Minute))
	cond := func(t batchv1.JobConditionType) batchv1.JobCondition {
		return batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue}
	}
	running := func() *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", Namespace: "ns"},
			Spec:   batchv1.JobSpec{Completions: ptrTo(int32(3)), Parallelism: ptrTo(int32(1))},
			Status: batchv1.JobStatus{StartTime: &now, Active: 1, UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{}}}
	}
	for _, tc := range []struct {
		name   string
		old    func(*batchv1.Job)
		update func(*batchv1.Job)
		want   []string
	}{
		{name: "counting a pod", update: func(j *batchv1.Job) { j.Status.Succeeded = 1 }},
		{name: "SuccessCriteriaMet then Complete", old: func(j *batchv1.Job) {
			j.Status.Active, j.Status.Conditions = 0, []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet)}
		}, update: func(j *batchv1.Job) {
			j.Status.Active, j.Status.CompletionTime = 0, &later
			j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet), cond(batchv1.JobComplete)}
		}},
		{name: "Complete at once, active, without a completion time", update: func(j *batchv1.Job) {
			j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobComplete)}
		}, want: []string{"status.completionTime", "status.conditions", "status.active"}},
		{name: "Failed without FailureTarget", update: func(j *batchv1.Job) {
			j.Status.Active, j.Status.Conditions = 0, []batchv1.JobCondition{cond(batchv1.JobFailed)}
		}, want: []string{"status.conditions"}},
		{name: "finished with uncounted and terminating pods", old: func(j *batchv1.Job) {
			j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget)}
		}, update: func(j *batchv1.Job) {
			j.Status.Active, j.Status.Terminating = 0, ptrTo(int32(1))
			j.Status.UncountedTerminatedPods.Failed = []types.UID{"a"}
			j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobFailureTarget), cond(batchv1.JobFailed)}
		}, want: []string{"status.uncountedTerminatedPods", "status.terminating"}},
		{name: "counters go down and a terminal condition goes away", old: func(j *batchv1.Job) {
			j.Status.Failed, j.Status.Conditions = 2, []batchv1.JobCondition{cond(batchv1.JobFailureTarget)}
		}, update: func(j *batchv1.Job) { j.Status.Failed, j.Status.Conditions = 1, nil }, want: []string{"status.conditions", "status.failed"}},
		{name: "duplicate and empty uncounted pods, more ready than active", update: func(j *batchv1.Job) {
			j.Status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{Succeeded: []types.UID{"a", ""}, Failed: []types.UID{"a"}}
			j.Status.Ready = ptrTo(int32(2))
		}, want: []string{"status.uncountedTerminatedPods.succeeded[1]", "status.uncountedTerminatedPods.failed[0]", "status.ready"}},
		{name: "index lists of a non-indexed job", update: func(j *batchv1.Job) {
			j.Status.CompletedIndexes = "0,2"
			j.Status.FailedIndexes = ptrTo("1")
		}, want: []string{"status.completedIndexes", "status.failedIndexes"}},
		{name: "malformed and overlapping index lists", old: func(j *batchv1.Job) {
			j.Spec.CompletionMode, j.Spec.BackoffLimitPerIndex = ptrTo(batchv1.IndexedCompletion), ptrTo(int32(1))
		}, update: func(j *batchv1.Job) {
			j.Status.CompletedIndexes = "0-1"
			j.Status.FailedIndexes = ptrTo("1")
		}, want: []string{"status.failedIndexes"}},
		{name: "index beyond completions", old: func(j *batchv1.Job) { j.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion) },
			update: func(j *batchv1.Job) { j.Status.CompletedIndexes = "1,5" }, want: []string{"status.completedIndexes"}},
		{name: "startTime of a running job", update: func(j *batchv1.Job) { j.Status.StartTime = &later },
			want: []string{"status.startTime"}},
		{name: "startTime cleared on suspend", old: func(j *batchv1.Job) { j.Spec.Suspend = ptrTo(true) },
			update: func(j *batchv1.Job) { j.Status.StartTime = nil }},
		{name: "startTime reset on resume", old: func(j *batchv1.Job) {
			j.Status.Conditions = []batchv1.JobCondition{cond(batchv1.JobSuspended)}
		}, update: func(j *batchv1.Job) {
			j.Status.StartTime = &later
			j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobSuspended, Status: corev1.ConditionFalse}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := running()
			if tc.old != nil {
				tc.old(old)
			}
			job := old.DeepCopy()
			tc.update(job)
			var got []string
			for _, e := range validateJobStatusUpdate(job, old) {
				got = append(got, e.Field)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("errors on %v, want on %v (%v)", got, tc.want, validateJobStatusUpdate(job, old))
			}
		})
	}
}

func TestValidateTimeZone(t *testing.T) {
	for _, tc := range []struct{ tz, want string }{
		{"Asia/Tokyo", ""},
		{"Etc/GMT+5", ""},
		{"", "timeZone must be nil or non-empty string"},
		{"../etc", "unknown time zone ../etc"},
		{"Local", "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"},
		{"Mars/Olympus", "unknown time zone Mars/Olympus"},
	} {
		t.Run(tc.tz, func(t *testing.T) {
			errs := validateTimeZone(tc.tz, field.NewPath("spec", "timeZone"))
			got := ""
			if len(errs) > 0 {
				got = errs[0].Detail
			}
			if got != tc.want {
				t.Errorf("validateTimeZone(%q) = %q, want %q", tc.tz, got, tc.want)
			}
		})
	}
}
