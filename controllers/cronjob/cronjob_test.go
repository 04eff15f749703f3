package cronjob

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestMostRecentSchedule(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	cases := []struct {
		name         string
		schedule     string
		last         *time.Time
		deadline     *int64
		now          time.Time
		want         *time.Time
		wantMissed   int
		wantNextWait time.Duration
	}{
		{name: "not yet due", schedule: "* * * * *", now: created.Add(20 * time.Second),
			wantNextWait: 10*time.Second + nextScheduleDelta},
		{name: "the first minute", schedule: "* * * * *", now: created.Add(31 * time.Second),
			want: ptr.To(created.Add(30 * time.Second)), wantMissed: 1, wantNextWait: 59*time.Second + nextScheduleDelta},
		{name: "many missed minutes give the latest", schedule: "* * * * *", now: created.Add(3*time.Hour + 5*time.Second),
			want: ptr.To(time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)), wantMissed: 180, wantNextWait: 25*time.Second + nextScheduleDelta},
		{name: "after the last run", schedule: "*/5 * * * *", last: ptr.To(time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)),
			now: time.Date(2026, 3, 1, 10, 7, 0, 0, time.UTC), wantNextWait: 3*time.Minute + nextScheduleDelta},
		{name: "the starting deadline bounds the look back", schedule: "@hourly", deadline: ptr.To(int64(60)),
			now: time.Date(2026, 3, 1, 15, 30, 0, 0, time.UTC), wantNextWait: 30*time.Minute + nextScheduleDelta},
		{name: "a time zone shifts the schedule", schedule: "TZ=Asia/Tokyo 1 19 * * *", now: time.Date(2026, 3, 1, 10, 1, 40, 0, time.UTC),
			want: ptr.To(time.Date(2026, 3, 1, 19, 1, 0, 0, tokyo)), wantMissed: 1, wantNextWait: 24*time.Hour - 40*time.Second + nextScheduleDelta},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)},
				Spec: batchv1.CronJobSpec{Schedule: tc.schedule, StartingDeadlineSeconds: tc.deadline}}
			if tc.last != nil {
				cj.Status.LastScheduleTime = ptr.To(metav1.NewTime(*tc.last))
			}
			sched, err := cron.ParseStandard(tc.schedule)
			if err != nil {
				t.Fatal(err)
			}
			got, missed := mostRecentSchedule(cj, tc.now, sched)
			if (got == nil) != (tc.want == nil) || (got != nil && !got.Equal(*tc.want)) || missed != tc.wantMissed {
				t.Errorf("got %v (%d missed), want %v (%d)", got, missed, tc.want, tc.wantMissed)
			}
			if wait := nextScheduleIn(cj, tc.now, sched); wait != tc.wantNextWait {
				t.Errorf("next in %v, want %v", wait, tc.wantNextWait)
			}
		})
	}
}

func TestJobFromTemplate(t *testing.T) {
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "ns", UID: "u"},
		Spec: batchv1.CronJobSpec{TimeZone: ptr.To("Asia/Tokyo"), JobTemplate: batchv1.JobTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}}}}}
	scheduled := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	job, err := jobFromTemplate(cj, scheduled)
	if err != nil {
		t.Fatal(err)
	}
	if job.Name != "nightly-29539320" {
		t.Errorf("name %q", job.Name)
	}
	if got := job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]; got != "2026-03-01T19:00:00+09:00" {
		t.Errorf("scheduled timestamp %q", got)
	}
	if job.Labels["a"] != "b" || !metav1.IsControlledBy(job, cj) {
		t.Errorf("labels %v, owners %v", job.Labels, job.OwnerReferences)
	}
}
