package controllers

import (
	"strings"
	"time"

	"github.com/keelson/keelson/conformance/cluster"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func job(name string, completions, parallelism int32) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			Completions: ptr.To(completions), Parallelism: ptr.To(parallelism),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
			}},
		},
	}
}

// jobPods lists the pods of a Job that are not being deleted, by its controller-uid label.
func jobPods(ctx SpecContext, j *batchv1.Job, phase corev1.PodPhase) []corev1.Pod {
	GinkgoHelper()
	list, err := client.CoreV1().Pods(j.Namespace).List(ctx, metav1.ListOptions{LabelSelector: batchv1.ControllerUidLabel + "=" + string(j.UID)})
	Expect(err).NotTo(HaveOccurred())
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil && (phase == "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed || p.Status.Phase == phase && phase != "") {
			out = append(out, p)
		}
	}
	return out
}

// finishOne waits for a running pod of the Job and finishes it as a kubelet would, a minute ago
// (so that a replacement need not wait out the failure backoff).
func finishOne(ctx SpecContext, j *batchv1.Job, phase corev1.PodPhase, exitCode int32) corev1.Pod {
	GinkgoHelper()
	var p corev1.Pod
	Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).ShouldNot(BeEmpty())
	p = jobPods(ctx, j, "")[0]
	Expect(cluster.FinishPod(ctx, client, &p, phase, exitCode, time.Now().Add(-time.Minute))).To(Succeed())
	return p
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range j.Status.Conditions {
		if j.Status.Conditions[i].Type == t {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

// finishedJob waits until the Job has condition t (Complete or Failed) and returns it.
func finishedJob(ctx SpecContext, ns, name string, t batchv1.JobConditionType) *batchv1.Job {
	GinkgoHelper()
	var got *batchv1.Job
	Eventually(func(g Gomega) {
		var err error
		got, err = client.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		c := jobCondition(got, t)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(corev1.ConditionTrue))
	}).Should(Succeed())
	return got
}

var _ = Describe("Jobs", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("run pods to completion, replacing failed ones, and count each pod once", func(ctx SpecContext) {
		spec := job("work", 2, 1)
		spec.Spec.BackoffLimit = ptr.To(int32(3))
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(j.Spec.Selector.MatchLabels).To(HaveKeyWithValue(batchv1.ControllerUidLabel, string(j.UID)))

		failed := finishOne(ctx, j, corev1.PodFailed, 1)
		Expect(failed.Name).To(HavePrefix("work-"))
		Expect(failed.Finalizers).To(ContainElement(batchv1.JobTrackingFinalizer))
		Expect(failed.Labels).To(And(HaveKeyWithValue(batchv1.JobNameLabel, "work"), HaveKeyWithValue("job-name", "work"),
			HaveKeyWithValue(batchv1.ControllerUidLabel, string(j.UID)), HaveKeyWithValue("controller-uid", string(j.UID))))
		Expect(metav1.GetControllerOf(&failed).UID).To(Equal(j.UID))
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().Jobs(ns).Get(ctx, "work", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.Failed).To(Equal(int32(1)))
			g.Expect(got.Status.StartTime).NotTo(BeNil())
		}).Should(Succeed())
		// Counted, the failed pod is released from the tracking finalizer.
		Eventually(func(g Gomega) {
			p, err := client.CoreV1().Pods(ns).Get(ctx, failed.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.Finalizers).NotTo(ContainElement(batchv1.JobTrackingFinalizer))
		}).Should(Succeed())

		first := finishOne(ctx, j, corev1.PodSucceeded, 0)
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(ContainElement(Not(HaveField("Name", first.Name))))
		finishOne(ctx, j, corev1.PodSucceeded, 0)

		got := finishedJob(ctx, ns, "work", batchv1.JobComplete)
		Expect(got.Status.Succeeded).To(Equal(int32(2)))
		Expect(got.Status.Failed).To(Equal(int32(1)))
		Expect(got.Status.Active).To(BeZero())
		Expect(got.Status.Ready).To(Equal(ptr.To(int32(0))))
		Expect(got.Status.Terminating).To(Equal(ptr.To(int32(0))))
		Expect(got.Status.CompletionTime).NotTo(BeNil())
		Expect(got.Status.UncountedTerminatedPods.Succeeded).To(BeEmpty())
		Expect(got.Status.UncountedTerminatedPods.Failed).To(BeEmpty())
		met := jobCondition(got, batchv1.JobSuccessCriteriaMet)
		Expect(met).NotTo(BeNil())
		complete := jobCondition(got, batchv1.JobComplete)
		Expect(complete.Reason).To(Equal(batchv1.JobReasonCompletionsReached))
		Expect(complete.Message).To(Equal("Reached expected number of succeeded pods"))
		Expect(got.Status.Conditions[0].Type).To(Equal(batchv1.JobSuccessCriteriaMet))
		Eventually(func(g Gomega) {
			list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			for _, p := range list.Items {
				g.Expect(p.Finalizers).NotTo(ContainElement(batchv1.JobTrackingFinalizer))
			}
		}).Should(Succeed())
		Eventually(func(g Gomega) {
			events, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=work"})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(events.Items).To(ContainElement(And(HaveField("Reason", "Completed"), HaveField("Message", "Job completed"))))
			g.Expect(events.Items).To(ContainElement(HaveField("Reason", "SuccessfulCreate")))
		}).Should(Succeed())
	})

	It("wait out the failure backoff (10s after a first failure) before replacing a failed pod", func(ctx SpecContext) {
		j, err := client.BatchV1().Jobs(ns).Create(ctx, job("patient", 1, 1), metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(1))
		p := jobPods(ctx, j, "")[0]
		// It failed 8s ago: the replacement is due 2s from now.
		Expect(cluster.FinishPod(ctx, client, &p, corev1.PodFailed, 1, time.Now().Add(-8*time.Second))).To(Succeed())
		Consistently(func() []corev1.Pod { return jobPods(ctx, j, "") }, "1s").Should(BeEmpty())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).WithTimeout(10 * time.Second).Should(HaveLen(1))
	})

	It("fail once the backoff limit is exceeded", func(ctx SpecContext) {
		spec := job("doomed", 1, 1)
		spec.Spec.BackoffLimit = ptr.To(int32(0))
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		finishOne(ctx, j, corev1.PodFailed, 1)
		got := finishedJob(ctx, ns, "doomed", batchv1.JobFailed)
		Expect(got.Status.Failed).To(Equal(int32(1)))
		target := jobCondition(got, batchv1.JobFailureTarget)
		Expect(target).NotTo(BeNil())
		Expect(target.Reason).To(Equal(batchv1.JobReasonBackoffLimitExceeded))
		failedCond := jobCondition(got, batchv1.JobFailed)
		Expect(failedCond.Reason).To(Equal(batchv1.JobReasonBackoffLimitExceeded))
		Expect(failedCond.Message).To(Equal("Job has reached the specified backoff limit"))
		Expect(got.Status.CompletionTime).To(BeNil())
		Consistently(func() []corev1.Pod { return jobPods(ctx, j, "") }, "1s").Should(BeEmpty())
	})

	It("in Indexed mode run each completion index once and report the completed indexes", func(ctx SpecContext) {
		spec := job("indexed", 3, 3)
		spec.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(3))
		pods := jobPods(ctx, j, "")
		indexes := map[string]bool{}
		for _, p := range pods {
			ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
			indexes[ix] = true
			Expect(p.Labels).To(HaveKeyWithValue(batchv1.JobCompletionIndexAnnotation, ix))
			Expect(p.Name).To(HavePrefix("indexed-" + ix + "-"))
			Expect(p.Spec.Hostname).To(Equal("indexed-" + ix))
			Expect(p.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels['batch.kubernetes.io/job-completion-index']"}}}))
		}
		Expect(indexes).To(HaveLen(3))
		for _, p := range pods {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] != "1" {
				Expect(cluster.FinishPod(ctx, client, &p, corev1.PodSucceeded, 0, time.Now())).To(Succeed())
			}
		}
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().Jobs(ns).Get(ctx, "indexed", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.CompletedIndexes).To(Equal("0,2"))
			g.Expect(got.Status.Succeeded).To(Equal(int32(2)))
		}).Should(Succeed())
		for _, p := range pods {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "1" {
				Expect(cluster.FinishPod(ctx, client, &p, corev1.PodSucceeded, 0, time.Now())).To(Succeed())
			}
		}
		got := finishedJob(ctx, ns, "indexed", batchv1.JobComplete)
		Expect(got.Status.CompletedIndexes).To(Equal("0-2"))
		Expect(got.Status.Succeeded).To(Equal(int32(3)))
	})

	It("with a backoff limit per index retry each index alone and fail once an index is out of retries", func(ctx SpecContext) {
		spec := job("perindex", 2, 2)
		spec.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		spec.Spec.BackoffLimitPerIndex = ptr.To(int32(1))
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(j.Spec.BackoffLimit).To(Equal(ptr.To(int32(2147483647))))
		ofIndex := func(ix string) []corev1.Pod {
			var out []corev1.Pod
			for _, p := range jobPods(ctx, j, "") {
				if p.Annotations[batchv1.JobCompletionIndexAnnotation] == ix {
					out = append(out, p)
				}
			}
			return out
		}
		Eventually(func() []corev1.Pod { return ofIndex("0") }).Should(HaveLen(1))
		first := ofIndex("0")[0]
		Expect(first.Annotations).To(HaveKeyWithValue(batchv1.JobIndexFailureCountAnnotation, "0"))
		Expect(cluster.FinishPod(ctx, client, &first, corev1.PodFailed, 1, time.Now().Add(-time.Minute))).To(Succeed())
		// The replacement carries the index's failure count.
		Eventually(func() []corev1.Pod { return ofIndex("0") }).Should(ContainElement(And(
			Not(HaveField("Name", first.Name)), HaveField("ObjectMeta.Annotations", HaveKeyWithValue(batchv1.JobIndexFailureCountAnnotation, "1")))))
		second := ofIndex("0")[0]
		Expect(cluster.FinishPod(ctx, client, &second, corev1.PodFailed, 1, time.Now().Add(-time.Minute))).To(Succeed())
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().Jobs(ns).Get(ctx, "perindex", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Status.FailedIndexes).To(Equal(ptr.To("0")))
			g.Expect(got.Status.Failed).To(Equal(int32(2)))
		}).Should(Succeed())
		Consistently(func() []corev1.Pod { return ofIndex("0") }, "1s").Should(BeEmpty())
		one := ofIndex("1")
		Expect(one).To(HaveLen(1))
		Expect(cluster.FinishPod(ctx, client, &one[0], corev1.PodSucceeded, 0, time.Now())).To(Succeed())
		got := finishedJob(ctx, ns, "perindex", batchv1.JobFailed)
		Expect(jobCondition(got, batchv1.JobFailed).Reason).To(Equal(batchv1.JobReasonFailedIndexes))
		Expect(jobCondition(got, batchv1.JobFailed).Message).To(Equal("Job has failed indexes"))
		Expect(got.Status.CompletedIndexes).To(Equal("1"))
		Expect(got.Status.FailedIndexes).To(Equal(ptr.To("0")))
	})

	It("fail at once when a pod failure policy's FailJob rule matches an exit code", func(ctx SpecContext) {
		spec := job("policy", 1, 1)
		spec.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
			{Action: batchv1.PodFailurePolicyActionIgnore, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{7}}},
			{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: ptr.To("main"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}}},
		}}
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		// An ignored failure is replaced and not counted.
		finishOne(ctx, j, corev1.PodFailed, 7)
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(1))
		p := finishOne(ctx, j, corev1.PodFailed, 42)
		got := finishedJob(ctx, ns, "policy", batchv1.JobFailed)
		c := jobCondition(got, batchv1.JobFailed)
		Expect(c.Reason).To(Equal(batchv1.JobReasonPodFailurePolicy))
		Expect(c.Message).To(Equal("Container main for pod " + ns + "/" + p.Name + " failed with exit code 42 matching FailJob rule at index 1"))
		Expect(got.Status.Failed).To(Equal(int32(1)))
	})

	It("delete their pods while suspended and start again when resumed", func(ctx SpecContext) {
		spec := job("paused", 2, 2)
		spec.Spec.Suspend = ptr.To(true)
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().Jobs(ns).Get(ctx, "paused", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			c := jobCondition(got, batchv1.JobSuspended)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(corev1.ConditionTrue))
			g.Expect(c.Reason).To(Equal("JobSuspended"))
			g.Expect(got.Status.StartTime).To(BeNil())
		}).Should(Succeed())
		Expect(jobPods(ctx, j, "")).To(BeEmpty())

		_, err = client.BatchV1().Jobs(ns).Patch(ctx, "paused", types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(2))
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().Jobs(ns).Get(ctx, "paused", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			c := jobCondition(got, batchv1.JobSuspended)
			g.Expect(c.Status).To(Equal(corev1.ConditionFalse))
			g.Expect(c.Reason).To(Equal("JobResumed"))
			g.Expect(got.Status.StartTime).NotTo(BeNil())
			g.Expect(got.Status.Active).To(Equal(int32(2)))
		}).Should(Succeed())

		_, err = client.BatchV1().Jobs(ns).Patch(ctx, "paused", types.MergePatchType, []byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(BeEmpty())
		Eventually(func(g Gomega) {
			got, err := client.BatchV1().Jobs(ns).Get(ctx, "paused", metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(jobCondition(got, batchv1.JobSuspended).Status).To(Equal(corev1.ConditionTrue))
			g.Expect(got.Status.Active).To(BeZero())
			g.Expect(got.Status.Failed).To(BeZero())
		}).Should(Succeed())
	})

	It("complete early when a success policy is met, removing the pods still running", func(ctx SpecContext) {
		spec := job("leader", 3, 3)
		spec.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
		spec.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr.To("0")}}}
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(3))
		for _, p := range jobPods(ctx, j, "") {
			if p.Annotations[batchv1.JobCompletionIndexAnnotation] == "0" {
				Expect(cluster.FinishPod(ctx, client, &p, corev1.PodSucceeded, 0, time.Now())).To(Succeed())
			}
		}
		got := finishedJob(ctx, ns, "leader", batchv1.JobComplete)
		for _, t := range []batchv1.JobConditionType{batchv1.JobSuccessCriteriaMet, batchv1.JobComplete} {
			Expect(jobCondition(got, t).Reason).To(Equal(batchv1.JobReasonSuccessPolicy))
			Expect(jobCondition(got, t).Message).To(Equal("Matched rules at index 0"))
		}
		Expect(got.Status.CompletedIndexes).To(Equal("0"))
		Expect(got.Status.Active).To(BeZero())
		Expect(got.Status.Failed).To(BeZero())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(BeEmpty())
	})

	It("with restartPolicy OnFailure count container restarts against the backoff limit", func(ctx SpecContext) {
		spec := job("restarts", 1, 1)
		spec.Spec.BackoffLimit = ptr.To(int32(2))
		spec.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(1))
		p := jobPods(ctx, j, "")[0]
		_, err = client.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType,
			[]byte(`{"status":{"phase":"Running","containerStatuses":[{"name":"main","image":"busybox","imageID":"","ready":false,"restartCount":2,"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}`),
			metav1.PatchOptions{}, "status")
		Expect(err).NotTo(HaveOccurred())
		got := finishedJob(ctx, ns, "restarts", batchv1.JobFailed)
		Expect(jobCondition(got, batchv1.JobFailed).Reason).To(Equal(batchv1.JobReasonBackoffLimitExceeded))
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(BeEmpty())
	})

	It("release their pods' tracking finalizer when deleted, in the background or orphaning", func(ctx SpecContext) {
		for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationBackground, metav1.DeletePropagationOrphan} {
			name := "gone-" + string(policy)
			name = strings.ToLower(name)
			j, err := client.BatchV1().Jobs(ns).Create(ctx, job(name, 1, 1), metav1.CreateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(1))
			p := jobPods(ctx, j, "")[0]
			Expect(client.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})).To(Succeed())
			Eventually(func(g Gomega) {
				got, err := client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
				if policy == metav1.DeletePropagationBackground {
					g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
					return
				}
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(got.OwnerReferences).To(BeEmpty())
				g.Expect(got.Finalizers).NotTo(ContainElement(batchv1.JobTrackingFinalizer))
			}).Should(Succeed())
		}
	})

	It("fail with DeadlineExceeded after activeDeadlineSeconds", func(ctx SpecContext) {
		spec := job("slow", 1, 1)
		spec.Spec.ActiveDeadlineSeconds = ptr.To(int64(2))
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Eventually(func() []corev1.Pod { return jobPods(ctx, j, "") }).Should(HaveLen(1))
		got := finishedJob(ctx, ns, "slow", batchv1.JobFailed)
		c := jobCondition(got, batchv1.JobFailed)
		Expect(c.Reason).To(Equal(batchv1.JobReasonDeadlineExceeded))
		Expect(c.Message).To(Equal("Job was active longer than specified deadline"))
		Expect(got.Status.Active).To(BeZero())
		Expect(got.Status.Failed).To(Equal(int32(1)))
		Expect(jobPods(ctx, j, "")).To(BeEmpty())
	})

	It("are deleted ttlSecondsAfterFinished after they finish", func(ctx SpecContext) {
		spec := job("shortlived", 1, 1)
		spec.Spec.TTLSecondsAfterFinished = ptr.To(int32(1))
		j, err := client.BatchV1().Jobs(ns).Create(ctx, spec, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		p := finishOne(ctx, j, corev1.PodSucceeded, 0)
		finishedJob(ctx, ns, "shortlived", batchv1.JobComplete)
		Eventually(func() bool {
			_, err := client.BatchV1().Jobs(ns).Get(ctx, "shortlived", metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(15 * time.Second).Should(BeTrue())
		Eventually(func() bool {
			_, err := client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}).WithTimeout(15 * time.Second).Should(BeTrue())
	})
})
