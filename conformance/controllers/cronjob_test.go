package controllers

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

func cronJob(name, schedule string) *batchv1.CronJob {
	j := job("", 1, 1)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"cron": name}, Annotations: map[string]string{"note": "from-template"}},
				Spec:       j.Spec,
			},
		},
	}
}

// ownedJobs lists the Jobs a CronJob controls that are not being deleted.
func ownedJobs(ctx SpecContext, cj *batchv1.CronJob) []batchv1.Job {
	GinkgoHelper()
	list, err := client.BatchV1().Jobs(cj.Namespace).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var out []batchv1.Job
	for _, j := range list.Items {
		if metav1.IsControlledBy(&j, cj) && j.DeletionTimestamp == nil {
			out = append(out, j)
		}
	}
	return out
}

// childJob creates a Job the CronJob controls, as if it had started it earlier.
func childJob(ctx SpecContext, cj *batchv1.CronJob, name string, backoffLimit int32) *batchv1.Job {
	GinkgoHelper()
	j := job(name, 1, 1)
	j.Spec.BackoffLimit = ptr.To(backoffLimit)
	j.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))}
	created, err := client.BatchV1().Jobs(cj.Namespace).Create(ctx, j, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return created
}

// overdue makes the CronJob's last run three minutes ago with the given Jobs active, then resumes
// it, so that the latest scheduled minute is due at once.
func overdue(ctx SpecContext, cj *batchv1.CronJob, active ...*batchv1.Job) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got, err := client.BatchV1().CronJobs(cj.Namespace).Get(ctx, cj.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		got.Status.LastScheduleTime = ptr.To(metav1.NewTime(time.Now().Add(-3 * time.Minute).Truncate(time.Minute)))
		got.Status.Active = nil
		for _, j := range active {
			got.Status.Active = append(got.Status.Active, corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name, UID: j.UID})
		}
		_, err = client.BatchV1().CronJobs(cj.Namespace).UpdateStatus(ctx, got, metav1.UpdateOptions{})
		return err
	})).To(Succeed())
	_, err := client.BatchV1().CronJobs(cj.Namespace).Patch(ctx, cj.Name, types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{})
	Expect(err).NotTo(HaveOccurred())
}

func hasEvent(ctx SpecContext, ns, name, reason, message string) func(Gomega) {
	return func(g Gomega) {
		events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(events.Items).To(ContainElement(And(HaveField("Reason", reason), HaveField("Message", message))))
	}
}

var _ = Describe("CronJobs", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("start a Job named for its scheduled minute when the schedule comes, and record it", func(ctx SpecContext) {
		cj, err := client.BatchV1().CronJobs(ns).Create(ctx, cronJob("tick", "* * * * *"), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var started batchv1.Job
		Eventually(func(g Gomega) {
			jobs := ownedJobs(ctx, cj)
			g.Expect(jobs).To(HaveLen(1))
			started = jobs[0]
		}).WithTimeout(65 * time.Second).WithPolling(time.Second).Should(Succeed())
		scheduled, err := time.Parse(time.RFC3339, started.Annotations[batchv1.CronJobScheduledTimestampAnnotation])
		Expect(err).NotTo(HaveOccurred())
		Expect(scheduled.Second()).To(BeZero())
		Expect(started.Name).To(Equal(fmt.Sprintf("tick-%d", scheduled.Unix()/60)))
		Expect(started.Labels).To(HaveKeyWithValue("cron", "tick"))
		Expect(started.Annotations).To(HaveKeyWithValue("note", "from-template"))
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Active).To(ConsistOf(HaveField("UID", started.UID)))
			g.Expect(got.Status.LastScheduleTime).NotTo(BeNil())
			g.Expect(got.Status.LastScheduleTime.Time.Equal(scheduled)).To(BeTrue())
		}).Should(Succeed())
		Eventually(hasEvent(ctx, ns, "tick", "SuccessfulCreate", "Created job "+started.Name)).Should(Succeed())

		// When its Job completes, it leaves the active list and sets the last success.
		finishOne(ctx, &started, corev1.PodSucceeded, 0)
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().CronJobs(ns).Get(ctx, "tick", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Active).To(BeEmpty())
			g.Expect(got.Status.LastSuccessfulTime).NotTo(BeNil())
		}).Should(Succeed())
		Eventually(hasEvent(ctx, ns, "tick", "SawCompletedJob", "Saw completed job: "+started.Name+", condition: Complete")).Should(Succeed())
	})

	It("with concurrencyPolicy Forbid do not start a Job while one is active", func(ctx SpecContext) {
		spec := cronJob("forbid", "* * * * *")
		spec.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
		spec.Spec.Suspend = ptr.To(true)
		cj, err := client.BatchV1().CronJobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		running := childJob(ctx, cj, "forbid-running", 6)
		overdue(ctx, cj, running)
		Eventually(hasEvent(ctx, ns, "forbid", "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")).Should(Succeed())
		Consistently(func() []batchv1.Job { return ownedJobs(ctx, cj) }, "2s").Should(ConsistOf(HaveField("Name", "forbid-running")))

		// Once it completes, the overdue minute starts.
		finishOne(ctx, running, corev1.PodSucceeded, 0)
		Eventually(func() []batchv1.Job { return ownedJobs(ctx, cj) }).Should(HaveLen(2))
	})

	It("with concurrencyPolicy Replace delete the active Job and start the new one", func(ctx SpecContext) {
		spec := cronJob("replace", "* * * * *")
		spec.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent
		spec.Spec.Suspend = ptr.To(true)
		cj, err := client.BatchV1().CronJobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		old := childJob(ctx, cj, "replace-old", 6)
		overdue(ctx, cj, old)
		Eventually(func(g Gomega) {
			_, err := client.BatchV1().Jobs(ns).Get(ctx, "replace-old", metav1.GetOptions{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
			jobs := ownedJobs(ctx, cj)
			g.Expect(jobs).To(HaveLen(1))
			got, err := client.BatchV1().CronJobs(ns).Get(ctx, "replace", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Active).To(ConsistOf(HaveField("Name", jobs[0].Name)))
		}).Should(Succeed())
		Eventually(hasEvent(ctx, ns, "replace", "SuccessfulDelete", "Deleted job replace-old")).Should(Succeed())
	})

	It("keep only the newest finished Jobs within the history limits", func(ctx SpecContext) {
		spec := cronJob("history", "0 0 1 1 *")
		spec.Spec.SuccessfulJobsHistoryLimit = ptr.To(int32(1))
		spec.Spec.FailedJobsHistoryLimit = ptr.To(int32(1))
		cj, err := client.BatchV1().CronJobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, name := range []string{"history-s1", "history-s2", "history-s3"} {
			finishOne(ctx, childJob(ctx, cj, name, 6), corev1.PodSucceeded, 0)
		}
		for _, name := range []string{"history-f1", "history-f2"} {
			finishOne(ctx, childJob(ctx, cj, name, 0), corev1.PodFailed, 1)
		}
		Eventually(func() []string {
			var names []string
			for _, j := range ownedJobs(ctx, cj) {
				names = append(names, j.Name)
			}
			return names
		}).Should(ConsistOf("history-s3", "history-f2"))
		Eventually(hasEvent(ctx, ns, "history", "SuccessfulDelete", "Deleted job history-s1")).Should(Succeed())
	})
})
