package strategy

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// wantErr is one expected error: type, path, and optionally the exact detail.
type wantErr struct {
	typ    field.ErrorType
	path   string
	detail string
}

func checkErrs(t *testing.T, got field.ErrorList, want []wantErr) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.typ || g.Field != w.path {
			t.Errorf("error %d: got %s %s, want %s %s", i, g.Type, g.Field, w.typ, w.path)
		}
		if w.detail != "" && g.Detail != w.detail {
			t.Errorf("error %d: detail %q, want %q", i, g.Detail, w.detail)
		}
	}
}

func validPod() *corev1.Pod {
	p := testPod()
	defaultPod(p)
	return p
}

func TestValidatePod(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *corev1.Pod)
		want   []wantErr
	}{
		{"valid", func(p *corev1.Pod) {}, nil},
		{"no containers", func(p *corev1.Pod) { p.Spec.Containers = nil }, []wantErr{{field.ErrorTypeRequired, "spec.containers", ""}}},
		{"container name missing", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "" }, []wantErr{{field.ErrorTypeRequired, "spec.containers[0].name", ""}}},
		{"container name invalid", func(p *corev1.Pod) { p.Spec.Containers[0].Name = "Bad_Name" }, []wantErr{{field.ErrorTypeInvalid, "spec.containers[0].name", ""}}},
		{"duplicate container", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, p.Spec.Containers[0])
		}, []wantErr{{field.ErrorTypeDuplicate, "spec.containers[1].name", ""}}},
		{"init and regular container share a name", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{p.Spec.Containers[0]}
			p.Spec.InitContainers[0].LivenessProbe = nil
		}, []wantErr{{field.ErrorTypeDuplicate, "spec.containers[0].name", ""}}},
		{"image missing", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "" }, []wantErr{{field.ErrorTypeRequired, "spec.containers[0].image", ""}}},
		{"restartPolicy", func(p *corev1.Pod) { p.Spec.RestartPolicy = "Sometimes" }, []wantErr{{field.ErrorTypeNotSupported, "spec.restartPolicy", `supported values: "Always", "OnFailure", "Never"`}}},
		{"dnsPolicy", func(p *corev1.Pod) { p.Spec.DNSPolicy = "Bogus" }, []wantErr{{field.ErrorTypeNotSupported, "spec.dnsPolicy", ""}}},
		{"mount of a missing volume", func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
		}, []wantErr{{field.ErrorTypeNotFound, "spec.containers[0].volumeMounts[0].name", ""}}},
		{"duplicate volume", func(p *corev1.Pod) { p.Spec.Volumes = append(p.Spec.Volumes, p.Spec.Volumes[0]) }, []wantErr{{field.ErrorTypeDuplicate, "spec.volumes[3].name", ""}}},
		{"port out of range", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 70000 }, []wantErr{{field.ErrorTypeInvalid, "spec.containers[0].ports[0].containerPort", "must be between 1 and 65535, inclusive"}}},
		{"port protocol", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Protocol = "ICMP" }, []wantErr{{field.ErrorTypeNotSupported, "spec.containers[0].ports[0].protocol", ""}}},
		{"requests above limits", func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			}
		}, []wantErr{{field.ErrorTypeInvalid, "spec.containers[0].resources.requests[cpu]", "must be less than or equal to cpu limit of 1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := validPod()
			tc.mutate(p)
			checkErrs(t, validatePod(p), tc.want)
		})
	}
}

func TestValidatePodUpdate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(p *corev1.Pod)
		want   []wantErr
	}{
		{"image change", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:2" }, nil},
		{"added toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
		}, nil},
		{"removed toleration", func(p *corev1.Pod) { p.Spec.Tolerations = p.Spec.Tolerations[:1] }, []wantErr{
			{field.ErrorTypeForbidden, "spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"},
		}},
		{"port change", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 81 }, []wantErr{{field.ErrorTypeForbidden, "spec", ""}}},
		{"added container", func(p *corev1.Pod) {
			c := p.Spec.Containers[0]
			c.Name = "d"
			p.Spec.Containers = append(p.Spec.Containers, c)
		}, []wantErr{{field.ErrorTypeForbidden, "spec.containers", "pod updates may not add or remove containers"}}},
		{"activeDeadlineSeconds raised", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(100)) }, []wantErr{
			{field.ErrorTypeInvalid, "spec.activeDeadlineSeconds", "must be less than or equal to previous value"},
		}},
		{"activeDeadlineSeconds lowered", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(5)) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := validPod()
			old.Spec.ActiveDeadlineSeconds = ptrTo(int64(10))
			p := old.DeepCopy()
			tc.mutate(p)
			checkErrs(t, validatePodUpdate(p, old), tc.want)
		})
	}

	t.Run("message", func(t *testing.T) {
		old := validPod()
		p := old.DeepCopy()
		p.Spec.NodeName = "elsewhere"
		errs := validatePodUpdate(p, old)
		want := "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"
		if len(errs) != 1 || !strings.HasPrefix(errs[0].Detail, want) {
			t.Errorf("got %v", errs)
		}
	})
}

func validService() *corev1.Service {
	s := &corev1.Service{Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "x"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	defaultService(s)
	return s
}

func TestValidateService(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(s *corev1.Service)
		want   []wantErr
	}{
		{"valid", func(s *corev1.Service) {}, nil},
		{"no ports", func(s *corev1.Service) { s.Spec.Ports = nil }, []wantErr{{field.ErrorTypeRequired, "spec.ports", ""}}},
		{"headless without ports", func(s *corev1.Service) {
			s.Spec.Ports = nil
			s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"}
		}, nil},
		{"unnamed ports", func(s *corev1.Service) {
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: 81, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(81)})
		}, []wantErr{{field.ErrorTypeRequired, "spec.ports[0].name", ""}, {field.ErrorTypeRequired, "spec.ports[1].name", ""}}},
		{"duplicate port names", func(s *corev1.Service) {
			s.Spec.Ports[0].Name = "a"
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: "a", Port: 81, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(81)})
		}, []wantErr{{field.ErrorTypeDuplicate, "spec.ports[1].name", ""}}},
		{"port range", func(s *corev1.Service) { s.Spec.Ports[0].Port = 0 }, []wantErr{{field.ErrorTypeInvalid, "spec.ports[0].port", "must be between 1 and 65535, inclusive"}}},
		{"type", func(s *corev1.Service) { s.Spec.Type = "Magic" }, []wantErr{{field.ErrorTypeNotSupported, "spec.type", `supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"`}}},
		{"externalName missing", func(s *corev1.Service) {
			s.Spec = corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, SessionAffinity: corev1.ServiceAffinityNone}
		}, []wantErr{{field.ErrorTypeRequired, "spec.externalName", ""}}},
		{"nodePort on ClusterIP", func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 30000 }, []wantErr{
			{field.ErrorTypeForbidden, "spec.ports[0].nodePort", "may not be used when `type` is 'ClusterIP'"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validService()
			tc.mutate(s)
			checkErrs(t, validateService(s), tc.want)
		})
	}
}

func TestValidateServiceUpdate(t *testing.T) {
	old := validService()
	old.Spec.ClusterIP, old.Spec.ClusterIPs = "10.0.0.1", []string{"10.0.0.1"}
	s := old.DeepCopy()
	s.Spec.ClusterIP, s.Spec.ClusterIPs = "10.0.0.2", []string{"10.0.0.2"}
	checkErrs(t, validateServiceUpdate(s, old), []wantErr{{field.ErrorTypeInvalid, "spec.clusterIPs[0]", "may not change once set"}})
}

func TestValidateConfigMapAndSecret(t *testing.T) {
	immutable := ptrTo(true)
	big := strings.Repeat("x", maxDataSize+1)
	cases := []struct {
		name string
		obj  runtime.Object
		old  runtime.Object
		want []wantErr
	}{
		{"configmap bad key", &corev1.ConfigMap{Data: map[string]string{"a/b": "x"}}, nil, []wantErr{{field.ErrorTypeInvalid, "data[a/b]", ""}}},
		{"configmap too big", &corev1.ConfigMap{Data: map[string]string{"a": big}}, nil, []wantErr{{field.ErrorTypeTooLong, field.NewPath("").String(), "may not be more than 1048576 bytes"}}},
		{"configmap immutable data", &corev1.ConfigMap{Immutable: immutable, Data: map[string]string{"a": "2"}},
			&corev1.ConfigMap{Immutable: immutable, Data: map[string]string{"a": "1"}},
			[]wantErr{{field.ErrorTypeForbidden, "data", "field is immutable when `immutable` is set"}}},
		{"configmap immutable unset", &corev1.ConfigMap{}, &corev1.ConfigMap{Immutable: immutable},
			[]wantErr{{field.ErrorTypeForbidden, "immutable", "field is immutable when `immutable` is set"}}},
		{"secret tls", &corev1.Secret{Type: corev1.SecretTypeTLS}, nil, []wantErr{
			{field.ErrorTypeRequired, "data[tls.crt]", ""}, {field.ErrorTypeRequired, "data[tls.key]", ""}}},
		{"secret dockerconfigjson", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson}, nil, []wantErr{{field.ErrorTypeRequired, "data[.dockerconfigjson]", ""}}},
		{"secret sa token", &corev1.Secret{Type: corev1.SecretTypeServiceAccountToken}, nil, []wantErr{
			{field.ErrorTypeRequired, "metadata.annotations[kubernetes.io/service-account.name]", ""}}},
		{"secret type change", &corev1.Secret{Type: corev1.SecretTypeOpaque}, &corev1.Secret{Type: "foo"}, []wantErr{{field.ErrorTypeInvalid, "type", "field is immutable"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got field.ErrorList
			switch o := tc.obj.(type) {
			case *corev1.ConfigMap:
				if tc.old == nil {
					got = validateConfigMap(o)
				} else {
					got = validateConfigMapUpdate(o, tc.old)
				}
			case *corev1.Secret:
				if tc.old == nil {
					got = validateSecret(o)
				} else {
					got = validateSecretUpdate(o, tc.old)
				}
			}
			checkErrs(t, got, tc.want)
		})
	}
}

func validDeployment() *appsv1.Deployment {
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}},
		Template: testTemplate(),
	}}
	defaultDeployment(d)
	return d
}

func TestValidateDeployment(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(d *appsv1.Deployment)
		want   []wantErr
	}{
		{"valid", func(d *appsv1.Deployment) {}, nil},
		{"no selector", func(d *appsv1.Deployment) { d.Spec.Selector = nil }, []wantErr{{field.ErrorTypeRequired, "spec.selector", ""}}},
		{"empty selector", func(d *appsv1.Deployment) { d.Spec.Selector = &metav1.LabelSelector{} }, []wantErr{
			{field.ErrorTypeInvalid, "spec.selector", "empty selector is invalid for deployment"}}},
		{"mismatched labels", func(d *appsv1.Deployment) { d.Spec.Template.Labels = map[string]string{"app": "y"} }, []wantErr{
			{field.ErrorTypeInvalid, "spec.template.metadata.labels", "`selector` does not match template `labels`"}}},
		{"negative replicas", func(d *appsv1.Deployment) { d.Spec.Replicas = ptrTo(int32(-1)) }, []wantErr{
			{field.ErrorTypeInvalid, "spec.replicas", "must be greater than or equal to 0"}}},
		{"restartPolicy", func(d *appsv1.Deployment) { d.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }, []wantErr{
			{field.ErrorTypeNotSupported, "spec.template.spec.restartPolicy", ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := validDeployment()
			tc.mutate(d)
			checkErrs(t, validateDeployment(d), tc.want)
		})
	}
	t.Run("selector immutable", func(t *testing.T) {
		old := validDeployment()
		d := old.DeepCopy()
		d.Spec.Selector.MatchLabels["extra"] = "1"
		checkErrs(t, validateDeploymentUpdate(d, old), []wantErr{{field.ErrorTypeInvalid, "spec.selector", "field is immutable"}})
	})
}

func TestValidateWorkload(t *testing.T) {
	sel := func() *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}} }
	cases := []struct {
		name string
		obj  runtime.Object
		want []wantErr
	}{
		{"replicaset valid", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Selector: sel(), Template: testTemplate()}}, nil},
		{"replicaset no selector", &appsv1.ReplicaSet{Spec: appsv1.ReplicaSetSpec{Template: testTemplate()}}, []wantErr{{field.ErrorTypeRequired, "spec.selector", ""}}},
		{"statefulset valid", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: sel(), Template: testTemplate()}}, nil},
		{"statefulset empty selector", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{}, Template: testTemplate()}}, []wantErr{
			{field.ErrorTypeInvalid, "spec.selector", "empty selector is invalid for statefulset"}}},
		{"daemonset valid", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: sel(), Template: testTemplate()}}, nil},
		{"daemonset mismatch", &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}, Template: testTemplate()}}, []wantErr{
			{field.ErrorTypeInvalid, "spec.template.metadata.labels", "`selector` does not match template `labels`"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defaultWorkload(tc.obj)
			checkErrs(t, validateWorkload(tc.obj), tc.want)
		})
	}
	t.Run("statefulset forbidden update", func(t *testing.T) {
		old := &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Selector: sel(), Template: testTemplate(), ServiceName: "a"}}
		defaultWorkload(old)
		ss := old.DeepCopy()
		ss.Spec.ServiceName = "b"
		ss.Spec.Replicas = ptrTo(int32(3))
		checkErrs(t, validateWorkloadUpdate(ss, old), []wantErr{{field.ErrorTypeForbidden, "spec", ""}})
		ok := old.DeepCopy()
		ok.Spec.Replicas = ptrTo(int32(3))
		checkErrs(t, validateWorkloadUpdate(ok, old), nil)
	})
}

func TestValidateJobUpdate(t *testing.T) {
	newJob := func() *batchv1.Job {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pi", UID: "u"}, Spec: batchv1.JobSpec{Template: testTemplate()}}
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
		defaultJob(j)
		return j
	}
	cases := []struct {
		name   string
		mutate func(j *batchv1.Job)
		want   []wantErr
	}{
		{"parallelism", func(j *batchv1.Job) { j.Spec.Parallelism = ptrTo(int32(5)) }, nil},
		{"template", func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "other" }, []wantErr{
			{field.ErrorTypeInvalid, "spec.template", "field is immutable"}}},
		{"selector", func(j *batchv1.Job) { j.Spec.Selector.MatchLabels["x"] = "y" }, []wantErr{
			{field.ErrorTypeInvalid, "spec.selector", "field is immutable"}}},
		{"completions", func(j *batchv1.Job) { j.Spec.Completions = ptrTo(int32(4)) }, []wantErr{
			{field.ErrorTypeInvalid, "spec.completions", "field is immutable"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			old := newJob()
			j := old.DeepCopy()
			tc.mutate(j)
			checkErrs(t, validateJobUpdate(j, old), tc.want)
		})
	}
	t.Run("elastic indexed", func(t *testing.T) {
		old := newJob()
		old.Spec.CompletionMode = ptrTo(batchv1.IndexedCompletion)
		j := old.DeepCopy()
		j.Spec.Completions, j.Spec.Parallelism = ptrTo(int32(4)), ptrTo(int32(4))
		checkErrs(t, validateJobUpdate(j, old), nil)
		j.Spec.Parallelism = ptrTo(int32(2))
		checkErrs(t, validateJobUpdate(j, old), []wantErr{{field.ErrorTypeInvalid, "spec.completions", "can only be modified in tandem with spec.parallelism"}})
	})
	t.Run("suspended job may change node selector", func(t *testing.T) {
		old := newJob()
		old.Spec.Suspend = ptrTo(true)
		j := old.DeepCopy()
		j.Spec.Template.Spec.NodeSelector = map[string]string{"zone": "a"}
		checkErrs(t, validateJobUpdate(j, old), nil)
	})
}
