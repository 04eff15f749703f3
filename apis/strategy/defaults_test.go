package strategy

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestDefaultsIdempotent(t *testing.T) {
	cases := []struct {
		name string
		fn   func(runtime.Object)
		obj  runtime.Object
	}{
		{"pod", defaultPod, testPod()},
		{"service", defaultService, &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}},
		{"namespace", defaultNamespace, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}},
		{"deployment", defaultDeployment, &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: testTemplate()}}},
		{"statefulset", defaultWorkload, &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: testTemplate()}}},
		{"hpa", defaultHPA, &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(int32(60))}}}}},
		{"job", defaultJob, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", UID: "u"}, Spec: batchv1.JobSpec{Template: testTemplate()}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(tc.obj)
			once := tc.obj.DeepCopyObject()
			tc.fn(tc.obj)
			if !apiequality.Semantic.DeepEqual(once, tc.obj) {
				t.Errorf("second defaulting changed the object:\n%#v\n%#v", once, tc.obj)
			}
		})
	}
}

func testTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}},
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:          "c",
				Image:         "nginx:1.25",
				Ports:         []corev1.ContainerPort{{ContainerPort: 80}},
				Env:           []corev1.EnvVar{{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(80)}}},
			}},
			Volumes: []corev1.Volume{
				{Name: "empty"},
				{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/x"}}},
			},
		},
	}
}

func TestDefaultPod(t *testing.T) {
	pod := testPod()
	defaultPod(pod)
	s := pod.Spec
	c := s.Containers[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst},
		{"restartPolicy", s.RestartPolicy, corev1.RestartPolicyAlways},
		{"terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, int64(30)},
		{"schedulerName", s.SchedulerName, "default-scheduler"},
		{"enableServiceLinks", *s.EnableServiceLinks, true},
		{"securityContext", s.SecurityContext != nil, true},
		{"serviceAccountName", s.ServiceAccountName, "default"},
		{"serviceAccount", s.DeprecatedServiceAccount, "default"},
		{"priority", *s.Priority, int32(0)},
		{"preemptionPolicy", *s.PreemptionPolicy, corev1.PreemptLowerPriority},
		{"tolerations", len(s.Tolerations), 2},
		{"toleration0", s.Tolerations[0].Key, corev1.TaintNodeNotReady},
		{"toleration1 seconds", *s.Tolerations[1].TolerationSeconds, int64(300)},
		{"imagePullPolicy", c.ImagePullPolicy, corev1.PullIfNotPresent},
		{"terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log"},
		{"terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile},
		{"port protocol", c.Ports[0].Protocol, corev1.ProtocolTCP},
		{"fieldRef apiVersion", c.Env[0].ValueFrom.FieldRef.APIVersion, "v1"},
		{"probe timeout", c.LivenessProbe.TimeoutSeconds, int32(1)},
		{"probe period", c.LivenessProbe.PeriodSeconds, int32(10)},
		{"probe success", c.LivenessProbe.SuccessThreshold, int32(1)},
		{"probe failure", c.LivenessProbe.FailureThreshold, int32(3)},
		{"probe scheme", c.LivenessProbe.HTTPGet.Scheme, corev1.URISchemeHTTP},
		{"probe path", c.LivenessProbe.HTTPGet.Path, "/"},
		{"emptyDir", s.Volumes[0].EmptyDir != nil, true},
		{"configMap mode", *s.Volumes[1].ConfigMap.DefaultMode, int32(420)},
		{"hostPath type", *s.Volumes[2].HostPath.Type, corev1.HostPathUnset},
		{"phase", pod.Status.Phase, corev1.PodPending},
		{"qos", pod.Status.QOSClass, corev1.PodQOSBestEffort},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if ch.got != ch.want {
				t.Errorf("got %v, want %v", ch.got, ch.want)
			}
		})
	}
}

func TestDefaultTolerationsKept(t *testing.T) {
	pod := testPod()
	pod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	defaultPod(pod)
	if len(pod.Spec.Tolerations) != 1 {
		t.Errorf("a toleration of everything must suppress the defaults, got %v", pod.Spec.Tolerations)
	}
}

func TestImagePullPolicy(t *testing.T) {
	cases := []struct {
		image string
		want  corev1.PullPolicy
	}{
		{"nginx", corev1.PullAlways},
		{"nginx:latest", corev1.PullAlways},
		{"nginx:1.25", corev1.PullIfNotPresent},
		{"localhost:5000/nginx", corev1.PullAlways},
		{"localhost:5000/nginx:v1", corev1.PullIfNotPresent},
		{"nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", corev1.PullIfNotPresent},
		{"nginx:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", corev1.PullAlways},
	}
	for _, tc := range cases {
		t.Run(tc.image, func(t *testing.T) {
			c := corev1.Container{Image: tc.image}
			defaultContainer(&c)
			if c.ImagePullPolicy != tc.want {
				t.Errorf("got %s, want %s", c.ImagePullPolicy, tc.want)
			}
		})
	}
}

func TestPodQOS(t *testing.T) {
	rl := func(cpu, mem string) corev1.ResourceList {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return l
	}
	cases := []struct {
		name string
		res  corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"none", corev1.ResourceRequirements{}, corev1.PodQOSBestEffort},
		{"limits only (requests defaulted)", corev1.ResourceRequirements{Limits: rl("1", "1Gi")}, corev1.PodQOSGuaranteed},
		{"requests only", corev1.ResourceRequirements{Requests: rl("100m", "")}, corev1.PodQOSBurstable},
		{"cpu limit only", corev1.ResourceRequirements{Limits: rl("1", "")}, corev1.PodQOSBurstable},
		{"requests below limits", corev1.ResourceRequirements{Requests: rl("500m", "1Gi"), Limits: rl("1", "1Gi")}, corev1.PodQOSBurstable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod()
			pod.Spec.Containers[0].Resources = tc.res
			defaultPod(pod)
			if pod.Status.QOSClass != tc.want {
				t.Errorf("got %s, want %s", pod.Status.QOSClass, tc.want)
			}
		})
	}
}

func TestDefaultService(t *testing.T) {
	cases := []struct {
		name  string
		spec  corev1.ServiceSpec
		check func(t *testing.T, s corev1.ServiceSpec)
	}{
		{"clusterIP", corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}, func(t *testing.T, s corev1.ServiceSpec) {
			if s.Type != corev1.ServiceTypeClusterIP || s.SessionAffinity != corev1.ServiceAffinityNone ||
				s.Ports[0].Protocol != corev1.ProtocolTCP || s.Ports[0].TargetPort != intstr.FromInt32(80) ||
				*s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster ||
				*s.IPFamilyPolicy != corev1.IPFamilyPolicySingleStack || len(s.IPFamilies) != 1 || s.IPFamilies[0] != corev1.IPv4Protocol ||
				s.ExternalTrafficPolicy != "" || s.AllocateLoadBalancerNodePorts != nil {
				t.Errorf("bad defaults: %+v", s)
			}
		}},
		{"loadBalancer", corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}}}, func(t *testing.T, s corev1.ServiceSpec) {
			if s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster || !*s.AllocateLoadBalancerNodePorts || s.Ports[0].TargetPort != intstr.FromString("http") {
				t.Errorf("bad defaults: %+v", s)
			}
		}},
		{"externalName", corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}, func(t *testing.T, s corev1.ServiceSpec) {
			if s.IPFamilyPolicy != nil || s.IPFamilies != nil || s.InternalTrafficPolicy != nil {
				t.Errorf("ExternalName must get no IP fields: %+v", s)
			}
		}},
		{"headless selectorless", corev1.ServiceSpec{ClusterIP: "None"}, func(t *testing.T, s corev1.ServiceSpec) {
			if *s.IPFamilyPolicy != corev1.IPFamilyPolicyRequireDualStack || len(s.IPFamilies) != 2 || len(s.ClusterIPs) != 1 {
				t.Errorf("bad defaults: %+v", s)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := &corev1.Service{Spec: tc.spec}
			defaultService(svc)
			tc.check(t, svc.Spec)
		})
	}
}

func TestServiceKeepAllocated(t *testing.T) {
	old := &corev1.Service{Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeNodePort, ClusterIP: "10.0.0.5", ClusterIPs: []string{"10.0.0.5"},
		IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, IPFamilyPolicy: ptrTo(corev1.IPFamilyPolicySingleStack),
		Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}, {Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053}},
	}}
	svc := &corev1.Service{Spec: corev1.ServiceSpec{
		Type:  corev1.ServiceTypeNodePort,
		Ports: []corev1.ServicePort{{Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 80, Protocol: corev1.ProtocolTCP}, {Port: 81, Protocol: corev1.ProtocolTCP}},
	}}
	ServiceKeepAllocated(svc, old)
	if svc.Spec.ClusterIP != "10.0.0.5" || len(svc.Spec.ClusterIPs) != 1 || len(svc.Spec.IPFamilies) != 1 {
		t.Errorf("cluster IPs not kept: %+v", svc.Spec)
	}
	if svc.Spec.Ports[0].NodePort != 30053 || svc.Spec.Ports[1].NodePort != 30080 || svc.Spec.Ports[2].NodePort != 0 {
		t.Errorf("node ports not kept by port: %+v", svc.Spec.Ports)
	}
	if errs := validateServiceUpdate(svc, old); len(errs) != 0 {
		t.Errorf("unexpected errors: %v", errs)
	}
}

func TestDefaultNamespace(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}
	defaultNamespace(ns)
	if ns.Labels[corev1.LabelMetadataName] != "team" || ns.Status.Phase != corev1.NamespaceActive ||
		len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Errorf("bad defaults: %+v", ns)
	}
	// An update of an existing namespace (status set) keeps the finalizers as they are.
	upd := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}}
	defaultNamespace(upd)
	if len(upd.Spec.Finalizers) != 0 {
		t.Errorf("update must not add finalizers: %v", upd.Spec.Finalizers)
	}
}

func TestDefaultWorkloads(t *testing.T) {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Template: testTemplate()}}
	defaultDeployment(d)
	ss := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Template: testTemplate()}}
	defaultWorkload(ss)
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Template: testTemplate()}}
	defaultWorkload(ds)
	rs := &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: testTemplate()}}
	defaultWorkload(rs)
	rc := &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x"}}, Spec: testTemplate().Spec}}}
	defaultReplicationController(rc)
	cj := &batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: testTemplate()}}}}
	defaultCronJob(cj)

	checks := []struct {
		name      string
		got, want any
	}{
		{"deployment replicas", *d.Spec.Replicas, int32(1)},
		{"deployment strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType},
		{"deployment maxUnavailable", *d.Spec.Strategy.RollingUpdate.MaxUnavailable, intstr.FromString("25%")},
		{"deployment maxSurge", *d.Spec.Strategy.RollingUpdate.MaxSurge, intstr.FromString("25%")},
		{"deployment revisionHistoryLimit", *d.Spec.RevisionHistoryLimit, int32(10)},
		{"deployment progressDeadlineSeconds", *d.Spec.ProgressDeadlineSeconds, int32(600)},
		{"deployment template", d.Spec.Template.Spec.DNSPolicy, corev1.DNSClusterFirst},
		{"deployment template no pod-only defaults", d.Spec.Template.Spec.EnableServiceLinks == nil, true},
		{"statefulset replicas", *ss.Spec.Replicas, int32(1)},
		{"statefulset podManagementPolicy", ss.Spec.PodManagementPolicy, appsv1.OrderedReadyPodManagement},
		{"statefulset updateStrategy", ss.Spec.UpdateStrategy.Type, appsv1.RollingUpdateStatefulSetStrategyType},
		{"statefulset partition", *ss.Spec.UpdateStrategy.RollingUpdate.Partition, int32(0)},
		{"statefulset revisionHistoryLimit", *ss.Spec.RevisionHistoryLimit, int32(10)},
		{"statefulset whenDeleted", ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
		{"statefulset whenScaled", ss.Spec.PersistentVolumeClaimRetentionPolicy.WhenScaled, appsv1.RetainPersistentVolumeClaimRetentionPolicyType},
		{"daemonset updateStrategy", ds.Spec.UpdateStrategy.Type, appsv1.RollingUpdateDaemonSetStrategyType},
		{"daemonset maxUnavailable", *ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, intstr.FromInt32(1)},
		{"daemonset maxSurge", *ds.Spec.UpdateStrategy.RollingUpdate.MaxSurge, intstr.FromInt32(0)},
		{"daemonset revisionHistoryLimit", *ds.Spec.RevisionHistoryLimit, int32(10)},
		{"replicaset replicas", *rs.Spec.Replicas, int32(1)},
		{"rc replicas", *rc.Spec.Replicas, int32(1)},
		{"rc selector", rc.Spec.Selector["app"], "x"},
		{"rc labels", rc.Labels["app"], "x"},
		{"cronjob concurrencyPolicy", cj.Spec.ConcurrencyPolicy, batchv1.AllowConcurrent},
		{"cronjob suspend", *cj.Spec.Suspend, false},
		{"cronjob successfulJobsHistoryLimit", *cj.Spec.SuccessfulJobsHistoryLimit, int32(3)},
		{"cronjob failedJobsHistoryLimit", *cj.Spec.FailedJobsHistoryLimit, int32(1)},
		{"cronjob template", cj.Spec.JobTemplate.Spec.Template.Spec.SchedulerName, "default-scheduler"},
	}
	for _, ch := range checks {
		t.Run(ch.name, func(t *testing.T) {
			if ch.got != ch.want {
				t.Errorf("got %v, want %v", ch.got, ch.want)
			}
		})
	}
}

func TestDefaultJob(t *testing.T) {
	cases := []struct {
		name  string
		spec  batchv1.JobSpec
		check func(t *testing.T, j *batchv1.Job)
	}{
		{"plain", batchv1.JobSpec{}, func(t *testing.T, j *batchv1.Job) {
			s := j.Spec
			if *s.Parallelism != 1 || *s.Completions != 1 || *s.BackoffLimit != 6 || *s.CompletionMode != batchv1.NonIndexedCompletion ||
				*s.Suspend || *s.PodReplacementPolicy != batchv1.TerminatingOrFailed {
				t.Errorf("bad defaults: %+v", s)
			}
			l := s.Template.Labels
			if l["batch.kubernetes.io/controller-uid"] != "uid-1" || l["controller-uid"] != "uid-1" ||
				l["batch.kubernetes.io/job-name"] != "pi" || l["job-name"] != "pi" || l["app"] != "x" {
				t.Errorf("bad template labels: %v", l)
			}
			if len(s.Selector.MatchLabels) != 1 || s.Selector.MatchLabels["batch.kubernetes.io/controller-uid"] != "uid-1" {
				t.Errorf("bad selector: %v", s.Selector)
			}
			if len(j.Labels) != 1 || j.Labels["app"] != "x" {
				t.Errorf("job labels must come from the user's template labels: %v", j.Labels)
			}
		}},
		{"parallelism only", batchv1.JobSpec{Parallelism: ptrTo(int32(3))}, func(t *testing.T, j *batchv1.Job) {
			if j.Spec.Completions != nil || *j.Spec.Parallelism != 3 {
				t.Errorf("bad defaults: %+v", j.Spec)
			}
		}},
		{"backoffLimitPerIndex", batchv1.JobSpec{BackoffLimitPerIndex: ptrTo(int32(1))}, func(t *testing.T, j *batchv1.Job) {
			if *j.Spec.BackoffLimit != 2147483647 {
				t.Errorf("backoffLimit %d", *j.Spec.BackoffLimit)
			}
		}},
		{"podFailurePolicy", batchv1.JobSpec{PodFailurePolicy: &batchv1.PodFailurePolicy{}}, func(t *testing.T, j *batchv1.Job) {
			if *j.Spec.PodReplacementPolicy != batchv1.Failed {
				t.Errorf("podReplacementPolicy %s", *j.Spec.PodReplacementPolicy)
			}
		}},
		{"manualSelector", batchv1.JobSpec{ManualSelector: ptrTo(true), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}}, func(t *testing.T, j *batchv1.Job) {
			if len(j.Spec.Template.Labels) != 1 || len(j.Spec.Selector.MatchLabels) != 1 {
				t.Errorf("manual selector must be left alone: %v %v", j.Spec.Template.Labels, j.Spec.Selector)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", UID: "uid-1"}, Spec: tc.spec}
			j.Spec.Template = testTemplate()
			defaultJob(j)
			tc.check(t, j)
		})
	}
}

func TestDefaultSecret(t *testing.T) {
	s := &corev1.Secret{StringData: map[string]string{"a": "b"}, Data: map[string][]byte{"a": []byte("old"), "c": []byte("d")}}
	defaultSecret(s)
	if s.Type != corev1.SecretTypeOpaque || string(s.Data["a"]) != "b" || string(s.Data["c"]) != "d" || s.StringData != nil {
		t.Errorf("bad defaults: %+v", s)
	}
}

// An HPA gets minReplicas 1, a CPU target of 80% when it names no metric, and, when it has a
// behavior, the unset scaling rules filled in as upstream's autoscaling/v2 defaults do.
func TestDefaultHPA(t *testing.T) {
	hpa := &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 3,
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(int32(60))}}}}
	defaultHPA(hpa)
	max := autoscalingv2.MaxChangePolicySelect
	want := autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 3, MinReplicas: ptrTo(int32(1)),
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptrTo(int32(80))}}}},
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
			ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(int32(0)), SelectPolicy: &max, Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15}, {Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}},
			ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptrTo(int32(60)), SelectPolicy: &max, Policies: []autoscalingv2.HPAScalingPolicy{
				{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15}}},
		}}
	if !apiequality.Semantic.DeepEqual(hpa.Spec, want) {
		t.Errorf("defaulted spec:\n%#v\nwant:\n%#v", hpa.Spec, want)
	}
	none := &autoscalingv2.HorizontalPodAutoscaler{}
	defaultHPA(none)
	if none.Spec.Behavior != nil {
		t.Errorf("a missing behavior was defaulted: %#v", none.Spec.Behavior)
	}
}
