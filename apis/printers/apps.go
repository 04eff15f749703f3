package printers

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	appsv1beta1 "k8s.io/api/apps/v1beta1"
	batchv1 "k8s.io/api/batch/v1"
	batchv1beta1 "k8s.io/api/batch/v1beta1"
	corev1 "k8s.io/api/core/v1"
	extensionsv1beta1 "k8s.io/api/extensions/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
)

func registerApps(s *Set) {
	apps := func(kind string) schema.GroupKind { return schema.GroupKind{Group: appsv1.GroupName, Kind: kind} }

	dep, depSpec := extensionsv1beta1.DeploymentStatus{}.SwaggerDoc(), extensionsv1beta1.DeploymentSpec{}.SwaggerDoc()
	s.add(apps("Deployment"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Ready", "string", "Number of the pod with ready state"),
		col("Up-to-date", "string", dep["updatedReplicas"]),
		col("Available", "string", dep["availableReplicas"]),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
		wide("Selector", "string", depSpec["selector"]),
	}, func(o *appsv1.Deployment, now time.Time) []interface{} {
		selector := "<invalid>"
		if sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector); err == nil {
			selector = sel.String()
		}
		names, images := containerCells(o.Spec.Template.Spec.Containers)
		return []interface{}{o.Name, fmt.Sprintf("%d/%d", o.Status.ReadyReplicas, replicas(o.Spec.Replicas)),
			int64(o.Status.UpdatedReplicas), int64(o.Status.AvailableReplicas), age(o, now), names, images, selector}
	}))

	rsSpec, rsStatus := extensionsv1beta1.ReplicaSetSpec{}.SwaggerDoc(), extensionsv1beta1.ReplicaSetStatus{}.SwaggerDoc()
	s.add(apps("ReplicaSet"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Desired", "integer", rsSpec["replicas"]),
		col("Current", "integer", rsStatus["replicas"]),
		col("Ready", "integer", rsStatus["readyReplicas"]),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
		wide("Selector", "string", rsSpec["selector"]),
	}, func(o *appsv1.ReplicaSet, now time.Time) []interface{} {
		names, images := containerCells(o.Spec.Template.Spec.Containers)
		return []interface{}{o.Name, int64(replicas(o.Spec.Replicas)), int64(o.Status.Replicas), int64(o.Status.ReadyReplicas),
			age(o, now), names, images, metav1.FormatLabelSelector(o.Spec.Selector)}
	}))

	s.add(apps("StatefulSet"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Ready", "string", "Number of the pod with ready state"),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
	}, func(o *appsv1.StatefulSet, now time.Time) []interface{} {
		names, images := containerCells(o.Spec.Template.Spec.Containers)
		return []interface{}{o.Name, fmt.Sprintf("%d/%d", o.Status.ReadyReplicas, replicas(o.Spec.Replicas)), age(o, now), names, images}
	}))

	ds, dsSpec := extensionsv1beta1.DaemonSetStatus{}.SwaggerDoc(), extensionsv1beta1.DaemonSetSpec{}.SwaggerDoc()
	s.add(apps("DaemonSet"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Desired", "integer", ds["desiredNumberScheduled"]),
		col("Current", "integer", ds["currentNumberScheduled"]),
		col("Ready", "integer", ds["numberReady"]),
		col("Up-to-date", "integer", ds["updatedNumberScheduled"]),
		col("Available", "integer", ds["numberAvailable"]),
		col("Node Selector", "string", corev1.PodSpec{}.SwaggerDoc()["nodeSelector"]),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
		wide("Selector", "string", dsSpec["selector"]),
	}, func(o *appsv1.DaemonSet, now time.Time) []interface{} {
		st := o.Status
		names, images := containerCells(o.Spec.Template.Spec.Containers)
		return []interface{}{o.Name, int64(st.DesiredNumberScheduled), int64(st.CurrentNumberScheduled), int64(st.NumberReady),
			int64(st.UpdatedNumberScheduled), int64(st.NumberAvailable), labels.FormatLabels(o.Spec.Template.Spec.NodeSelector),
			age(o, now), names, images, metav1.FormatLabelSelector(o.Spec.Selector)}
	}))

	s.add(apps("ControllerRevision"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Controller", "string", "Controller of the object"),
		col("Revision", "string", appsv1beta1.ControllerRevision{}.SwaggerDoc()["revision"]),
		ageColumn(),
	}, func(o *appsv1.ControllerRevision, now time.Time) []interface{} {
		return []interface{}{o.Name, controllerName(o), o.Revision, age(o, now)}
	}))
}

func registerBatch(s *Set) {
	batch := func(kind string) schema.GroupKind { return schema.GroupKind{Group: batchv1.GroupName, Kind: kind} }
	selector := batchv1.JobSpec{}.SwaggerDoc()["selector"]

	s.add(batch("Job"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Status", "string", "Status of the job."),
		col("Completions", "string", batchv1.JobStatus{}.SwaggerDoc()["succeeded"]),
		col("Duration", "string", "Time required to complete the job."),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
		wide("Selector", "string", selector),
	}, jobCells))

	cj, cjStatus := batchv1beta1.CronJobSpec{}.SwaggerDoc(), batchv1beta1.CronJobStatus{}.SwaggerDoc()
	s.add(batch("CronJob"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Schedule", "string", cj["schedule"]),
		col("Timezone", "string", cj["timeZone"]),
		col("Suspend", "boolean", cj["suspend"]),
		col("Active", "integer", cjStatus["active"]),
		col("Last Schedule", "string", cjStatus["lastScheduleTime"]),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
		wide("Selector", "string", selector),
	}, func(o *batchv1.CronJob, now time.Time) []interface{} {
		last := "<none>"
		if o.Status.LastScheduleTime != nil {
			last = since(*o.Status.LastScheduleTime, now)
		}
		names, images := containerCells(o.Spec.JobTemplate.Spec.Template.Spec.Containers)
		return []interface{}{o.Name, o.Spec.Schedule, deref(o.Spec.TimeZone, "<none>"), boolPtrCell(o.Spec.Suspend),
			int64(len(o.Status.Active)), last, age(o, now), names, images, metav1.FormatLabelSelector(o.Spec.JobTemplate.Spec.Selector)}
	}))
}

func jobCondition(conds []batchv1.JobCondition, t batchv1.JobConditionType) bool {
	for _, c := range conds {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func jobCells(o *batchv1.Job, now time.Time) []interface{} {
	var completions string
	switch {
	case o.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", o.Status.Succeeded, *o.Spec.Completions)
	case o.Spec.Parallelism != nil && *o.Spec.Parallelism > 1:
		completions = fmt.Sprintf("%d/1 of %d", o.Status.Succeeded, *o.Spec.Parallelism)
	default:
		completions = fmt.Sprintf("%d/1", o.Status.Succeeded)
	}
	var took string
	switch {
	case o.Status.StartTime == nil:
	case o.Status.CompletionTime == nil:
		took = duration.HumanDuration(now.Sub(o.Status.StartTime.Time))
	default:
		took = duration.HumanDuration(o.Status.CompletionTime.Sub(o.Status.StartTime.Time))
	}
	var status string
	conds := o.Status.Conditions
	switch {
	case jobCondition(conds, batchv1.JobComplete):
		status = "Complete"
	case jobCondition(conds, batchv1.JobFailed):
		status = "Failed"
	case o.DeletionTimestamp != nil:
		status = "Terminating"
	case jobCondition(conds, batchv1.JobSuspended):
		status = "Suspended"
	case jobCondition(conds, batchv1.JobFailureTarget):
		status = "FailureTarget"
	default:
		status = "Running"
	}
	names, images := containerCells(o.Spec.Template.Spec.Containers)
	return []interface{}{o.Name, status, completions, took, age(o, now), names, images, metav1.FormatLabelSelector(o.Spec.Selector)}
}
