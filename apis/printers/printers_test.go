package printers

import (
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func ptr[T any](v T) *T { return &v }

func objMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: "default", CreationTimestamp: ago(10 * time.Minute)}
}

func TestColumns(t *testing.T) {
	s := New()
	tests := []struct {
		name   string
		gk     schema.GroupKind
		normal string
		wide   string
	}{
		{"pod", schema.GroupKind{Kind: "Pod"}, "Name,Ready,Status,Restarts,Age", "IP,Node,Nominated Node,Readiness Gates"},
		{"deployment", schema.GroupKind{Group: "apps", Kind: "Deployment"}, "Name,Ready,Up-to-date,Available,Age", "Containers,Images,Selector"},
		{"replicaset", schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}, "Name,Desired,Current,Ready,Age", "Containers,Images,Selector"},
		{"statefulset", schema.GroupKind{Group: "apps", Kind: "StatefulSet"}, "Name,Ready,Age", "Containers,Images"},
		{"daemonset", schema.GroupKind{Group: "apps", Kind: "DaemonSet"}, "Name,Desired,Current,Ready,Up-to-date,Available,Node Selector,Age", "Containers,Images,Selector"},
		{"job", schema.GroupKind{Group: "batch", Kind: "Job"}, "Name,Status,Completions,Duration,Age", "Containers,Images,Selector"},
		{"cronjob", schema.GroupKind{Group: "batch", Kind: "CronJob"}, "Name,Schedule,Timezone,Suspend,Active,Last Schedule,Age", "Containers,Images,Selector"},
		{"service", schema.GroupKind{Kind: "Service"}, "Name,Type,Cluster-IP,External-IP,Port(s),Age", "Selector"},
		{"node", schema.GroupKind{Kind: "Node"}, "Name,Status,Roles,Age,Version", "Internal-IP,External-IP,OS-Image,Kernel-Version,Container-Runtime"},
		{"event", schema.GroupKind{Kind: "Event"}, "Last Seen,Type,Reason,Object,Message", "Subobject,Source,First Seen,Count,Name"},
		{"events.k8s.io event", schema.GroupKind{Group: "events.k8s.io", Kind: "Event"}, "Last Seen,Type,Reason,Object,Message", "Subobject,Source,First Seen,Count,Name"},
		{"namespace", schema.GroupKind{Kind: "Namespace"}, "Name,Status,Age", ""},
		{"secret", schema.GroupKind{Kind: "Secret"}, "Name,Type,Data,Age", ""},
		{"configmap", schema.GroupKind{Kind: "ConfigMap"}, "Name,Data,Age", ""},
		{"pv", schema.GroupKind{Kind: "PersistentVolume"}, "Name,Capacity,Access Modes,Reclaim Policy,Status,Claim,StorageClass,VolumeAttributesClass,Reason,Age", "VolumeMode"},
		{"pvc", schema.GroupKind{Kind: "PersistentVolumeClaim"}, "Name,Status,Volume,Capacity,Access Modes,StorageClass,VolumeAttributesClass,Age", "VolumeMode"},
		{"hpa", schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}, "Name,Reference,Targets,MinPods,MaxPods,Replicas,Age", ""},
		{"rolebinding", schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}, "Name,Role,Age", "Users,Groups,ServiceAccounts"},
		{"role keeps default", schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "Role"}, "Name,Created At", ""},
		{"crd", schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}, "Name,Scope,Versions,Created At", "Group,Kind,ShortNames,Established"},
		{"csistoragecapacity keeps default", schema.GroupKind{Group: "storage.k8s.io", Kind: "CSIStorageCapacity"}, "Name,Created At", ""},
		{"serviceaccount", schema.GroupKind{Kind: "ServiceAccount"}, "Name,Age", ""},
		{"apiservice", schema.GroupKind{Group: "apiregistration.k8s.io", Kind: "APIService"}, "Name,Service,Available,Age", ""},
		{"ingress", schema.GroupKind{Group: "networking.k8s.io", Kind: "Ingress"}, "Name,Class,Hosts,Address,Ports,Age", ""},
		{"csr", schema.GroupKind{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}, "Name,Age,SignerName,Requestor,RequestedDuration,Condition", ""},
		{"csidriver", schema.GroupKind{Group: "storage.k8s.io", Kind: "CSIDriver"}, "Name,AttachRequired,PodInfoOnMount,StorageCapacity,TokenRequests,RequiresRepublish,Modes,Age", ""},
		{"priorityclass", schema.GroupKind{Group: "scheduling.k8s.io", Kind: "PriorityClass"}, "Name,Value,Global-Default,Age,PreemptionPolicy", ""},
		{"resourceslice", schema.GroupKind{Group: "resource.k8s.io", Kind: "ResourceSlice"}, "Name,Node,Driver,Pool,Age", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var normal, wide []string
			for _, c := range s.For(tt.gk).Columns {
				if c.Priority == 0 {
					normal = append(normal, c.Name)
				} else {
					wide = append(wide, c.Name)
				}
			}
			if got := strings.Join(normal, ","); got != tt.normal {
				t.Errorf("columns = %q, want %q", got, tt.normal)
			}
			if got := strings.Join(wide, ","); got != tt.wide {
				t.Errorf("wide columns = %q, want %q", got, tt.wide)
			}
		})
	}
}

func TestColumnDefinitions(t *testing.T) {
	s := New()
	for gk, p := range s.byKind {
		for _, c := range p.Columns {
			switch {
			case c.Name == "Name" && gk.Group == "storagemigration.k8s.io":
				// Upstream's StorageVersionMigration Name column has no name format.
				if c.Format != "" {
					t.Errorf("%v: Name column = %+v", gk, c)
				}
			case c.Name == "Name" && gk.Group == "" && gk.Kind == "Event":
				if c.Format != "name" || c.Priority != 1 {
					t.Errorf("%v: Name column = %+v", gk, c)
				}
			case c.Name == "Name":
				if c.Format != "name" || c.Type != "string" || c.Description != nameDescription {
					t.Errorf("%v: Name column = %+v", gk, c)
				}
			case c.Name == "Age":
				if c.Type != "string" || c.Description != creationTimestampDescription {
					t.Errorf("%v: Age column = %+v", gk, c)
				}
			}
		}
	}
	if got := s.For(schema.GroupKind{Kind: "Pod"}).Columns[5].Description; got != (corev1.PodStatus{}).SwaggerDoc()["podIP"] {
		t.Errorf("pod IP description = %q", got)
	}
}

// cells prints obj with its kind's printer.
func cells(t *testing.T, gk schema.GroupKind, obj runtime.Object) []interface{} {
	t.Helper()
	p := New().For(gk)
	row := p.Cells(obj, now)
	if len(row) != len(p.Columns) && gk.Kind != "IPAddress" {
		t.Fatalf("%d cells for %d columns: %v", len(row), len(p.Columns), row)
	}
	return row
}

func running() corev1.ContainerState {
	return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: ago(time.Minute)}}
}

func waiting(reason string) corev1.ContainerState {
	return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
}

func terminated(reason string, code int32) corev1.ContainerState {
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: code}}
}

func TestPodCells(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	basePod := func() *corev1.Pod {
		return &corev1.Pod{ObjectMeta: objMeta("web"), Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
	}
	tests := []struct {
		name                    string
		mutate                  func(p *corev1.Pod)
		ready, status, restarts string
	}{
		{"pending", func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }, "0/1", "Pending", "0"},
		{"running ready", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Ready: true, State: running()}}
		}, "1/1", "Running", "0"},
		{"two containers one ready", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side"})
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{
				{Name: "app", Ready: true, State: running()},
				{Name: "side", State: running()},
			}
		}, "1/2", "Running", "0"},
		{"container creating", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: waiting("ContainerCreating")}}
		}, "0/1", "ContainerCreating", "0"},
		{"crash loop with restarts", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{
				Name: "app", RestartCount: 3, State: waiting("CrashLoopBackOff"),
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, FinishedAt: ago(5 * time.Minute)}},
			}}
		}, "0/1", "CrashLoopBackOff", "3 (5m ago)"},
		{"init waiting", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", State: running()}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: waiting("PodInitializing")}}
		}, "0/1", "Init:0/1", "0"},
		{"second of two inits", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "a"}, {Name: "b"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{
				{Name: "a", State: terminated("Completed", 0)},
				{Name: "b", State: waiting("PodInitializing")},
			}
		}, "0/1", "Init:1/2", "0"},
		{"init crash loop", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", RestartCount: 2, State: waiting("CrashLoopBackOff")}}
		}, "0/1", "Init:CrashLoopBackOff", "2"},
		{"init failed without reason", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", State: terminated("", 2)}}
		}, "0/1", "Init:ExitCode:2", "0"},
		{"init done, pod initializing", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
			p.Status.Phase = corev1.PodPending
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", State: terminated("Completed", 0)}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: waiting("PodInitializing")}}
		}, "0/1", "PodInitializing", "0"},
		{"sidecar counts toward ready", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "proxy", RestartPolicy: &always}}
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "proxy", Ready: true, Started: ptr(true), State: running(), RestartCount: 1}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Ready: true, State: running()}}
		}, "2/2", "Running", "1"},
		{"completed", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: terminated("Completed", 0)}}
		}, "0/1", "Completed", "0"},
		{"completed container beside a running one, pod not ready", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side"})
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{
				{Name: "app", State: terminated("Completed", 0)},
				{Name: "side", Ready: true, State: running()},
			}
		}, "1/2", "NotReady", "0"},
		{"completed container beside a running one, pod ready", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side"})
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{
				{Name: "app", State: terminated("Completed", 0)},
				{Name: "side", Ready: true, State: running()},
			}
		}, "1/2", "Running", "0"},
		{"error exit", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: terminated("Error", 1)}}
		}, "0/1", "Error", "0"},
		{"killed by signal", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{Signal: 9, ExitCode: 137}}}}
		}, "0/1", "Signal:9", "0"},
		{"evicted", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason = "Evicted"
		}, "0/1", "Evicted", "0"},
		{"terminating", func(p *corev1.Pod) {
			p.DeletionTimestamp = ptr(ago(time.Second))
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Ready: true, State: running()}}
		}, "1/1", "Terminating", "0"},
		{"deleted after success stays completed", func(p *corev1.Pod) {
			p.DeletionTimestamp = ptr(ago(time.Second))
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", State: terminated("Completed", 0)}}
		}, "0/1", "Completed", "0"},
		{"node lost", func(p *corev1.Pod) {
			p.DeletionTimestamp = ptr(ago(time.Second))
			p.Status.Phase = corev1.PodRunning
			p.Status.Reason = "NodeLost"
		}, "0/1", "Unknown", "0"},
		{"scheduling gated", func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "SchedulingGated"}}
		}, "0/1", "SchedulingGated", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := basePod()
			tt.mutate(p)
			row := cells(t, schema.GroupKind{Kind: "Pod"}, p)
			if row[0] != "web" || row[1] != tt.ready || row[2] != tt.status || row[3] != tt.restarts || row[4] != "10m" {
				t.Errorf("row = %q, want ready %q status %q restarts %q", row[:5], tt.ready, tt.status, tt.restarts)
			}
		})
	}
}

func TestPodWideCells(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []interface{}
	}{
		{"unscheduled", &corev1.Pod{ObjectMeta: objMeta("p")}, []interface{}{"<none>", "<none>", "<none>", "<none>"}},
		{"scheduled with gates", &corev1.Pod{
			ObjectMeta: objMeta("p"),
			Spec: corev1.PodSpec{NodeName: "n1", ReadinessGates: []corev1.PodReadinessGate{
				{ConditionType: "example.com/a"}, {ConditionType: "example.com/b"}}},
			Status: corev1.PodStatus{
				PodIPs:            []corev1.PodIP{{IP: "10.0.0.5"}, {IP: "fd00::5"}},
				NominatedNodeName: "n2",
				Conditions: []corev1.PodCondition{
					{Type: "example.com/a", Status: corev1.ConditionTrue},
					{Type: "example.com/b", Status: corev1.ConditionFalse},
				},
			},
		}, []interface{}{"10.0.0.5", "n1", "n2", "1/2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := cells(t, schema.GroupKind{Kind: "Pod"}, tt.pod)
			if !reflect.DeepEqual(row[5:], tt.want) {
				t.Errorf("wide cells = %v, want %v", row[5:], tt.want)
			}
		})
	}
}

func TestServiceCells(t *testing.T) {
	tests := []struct {
		name string
		svc  corev1.Service
		want []interface{}
	}{
		{"cluster ip", corev1.Service{ObjectMeta: objMeta("kubernetes"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.43.0.1", ClusterIPs: []string{"10.43.0.1"},
			Ports: []corev1.ServicePort{{Port: 443, Protocol: corev1.ProtocolTCP}},
		}}, []interface{}{"kubernetes", "ClusterIP", "10.43.0.1", "<none>", "443/TCP", "10m", "<none>"}},
		{"headless with selector", corev1.Service{ObjectMeta: objMeta("db"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: "None", ClusterIPs: []string{"None"},
			Selector: map[string]string{"app": "db"},
		}}, []interface{}{"db", "ClusterIP", "None", "<none>", "<none>", "10m", "app=db"}},
		{"node port", corev1.Service{ObjectMeta: objMeta("web"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeNodePort, ClusterIPs: []string{"10.43.0.9"},
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP}, {Port: 53, Protocol: corev1.ProtocolUDP}},
		}}, []interface{}{"web", "NodePort", "10.43.0.9", "<none>", "80:30080/TCP,53/UDP", "10m", "<none>"}},
		{"load balancer pending", corev1.Service{ObjectMeta: objMeta("lb"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.43.0.10"},
			Ports: []corev1.ServicePort{{Port: 80, NodePort: 31000, Protocol: corev1.ProtocolTCP}},
		}}, []interface{}{"lb", "LoadBalancer", "10.43.0.10", "<pending>", "80:31000/TCP", "10m", "<none>"}},
		{"load balancer with ingress and external ips", corev1.Service{ObjectMeta: objMeta("lb"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeLoadBalancer, ClusterIPs: []string{"10.43.0.10"}, ExternalIPs: []string{"1.2.3.4"},
		}, Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "192.168.1.20"}, {Hostname: "lb.example.com"}, {IP: "192.168.1.10"},
		}}}}, []interface{}{"lb", "LoadBalancer", "10.43.0.10", "192.168.1.10,192.168.1.20,lb.example.com,1.2.3.4", "<none>", "10m", "<none>"}},
		{"external name", corev1.Service{ObjectMeta: objMeta("ext"), Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "example.com",
		}}, []interface{}{"ext", "ExternalName", "<none>", "example.com", "<none>", "10m", "<none>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if row := cells(t, schema.GroupKind{Kind: "Service"}, &tt.svc); !reflect.DeepEqual(row, tt.want) {
				t.Errorf("row = %q, want %q", row, tt.want)
			}
		})
	}
}

func TestNodeCells(t *testing.T) {
	ready := func(s corev1.ConditionStatus) []corev1.NodeCondition {
		return []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: s}}
	}
	tests := []struct {
		name          string
		node          corev1.Node
		status, roles string
	}{
		{"ready", corev1.Node{ObjectMeta: objMeta("n1"), Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue)}}, "Ready", "<none>"},
		{"cordoned", corev1.Node{ObjectMeta: objMeta("n1"), Spec: corev1.NodeSpec{Unschedulable: true},
			Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue)}}, "Ready,SchedulingDisabled", "<none>"},
		{"not ready", corev1.Node{ObjectMeta: objMeta("n1"), Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionFalse)}}, "NotReady", "<none>"},
		{"unknown ready condition", corev1.Node{ObjectMeta: objMeta("n1"), Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionUnknown)}}, "NotReady", "<none>"},
		{"no ready condition", corev1.Node{ObjectMeta: objMeta("n1")}, "Unknown", "<none>"},
		{"roles", corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", CreationTimestamp: ago(10 * time.Minute), Labels: map[string]string{
			"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true", "kubernetes.io/role": "master",
			"node-role.kubernetes.io/": "",
		}}, Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionTrue)}}, "Ready", "control-plane,etcd,master"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := cells(t, schema.GroupKind{Kind: "Node"}, &tt.node)
			if row[1] != tt.status || row[2] != tt.roles {
				t.Errorf("status, roles = %q, %q; want %q, %q", row[1], row[2], tt.status, tt.roles)
			}
		})
	}

	t.Run("wide", func(t *testing.T) {
		n := &corev1.Node{ObjectMeta: objMeta("n1"), Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: "n1"}, {Type: corev1.NodeInternalIP, Address: "192.168.0.2"}},
			NodeInfo:  corev1.NodeSystemInfo{KubeletVersion: "v1.37.2+keelson", OSImage: "Debian GNU/Linux 13 (trixie)", ContainerRuntimeVersion: "containerd://2.1.0"},
		}}
		want := []interface{}{"n1", "Unknown", "<none>", "10m", "v1.37.2+keelson", "192.168.0.2", "<none>", "Debian GNU/Linux 13 (trixie)", "<unknown>", "containerd://2.1.0"}
		if row := cells(t, schema.GroupKind{Kind: "Node"}, n); !reflect.DeepEqual(row, want) {
			t.Errorf("row = %q, want %q", row, want)
		}
	})
}

func TestDeploymentCells(t *testing.T) {
	tests := []struct {
		name string
		dep  appsv1.Deployment
		want []interface{}
	}{
		{"rolled out", appsv1.Deployment{
			ObjectMeta: objMeta("web"),
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(3)),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "nginx", Image: "nginx:1.27"}, {Name: "log", Image: "busybox"}}}},
			},
			Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2},
		}, []interface{}{"web", "2/3", int64(3), int64(2), "10m", "nginx,log", "nginx:1.27,busybox", "app=web"}},
		{"scaled to zero, expression selector", appsv1.Deployment{
			ObjectMeta: objMeta("idle"),
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(0)),
				Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}},
			},
		}, []interface{}{"idle", "0/0", int64(0), int64(0), "10m", "", "", "tier in (a,b)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if row := cells(t, schema.GroupKind{Group: "apps", Kind: "Deployment"}, &tt.dep); !reflect.DeepEqual(row, tt.want) {
				t.Errorf("row = %#v, want %#v", row, tt.want)
			}
		})
	}
}

func TestOtherKindCells(t *testing.T) {
	tests := []struct {
		name string
		gk   schema.GroupKind
		obj  runtime.Object
		want []interface{}
	}{
		{"namespace", schema.GroupKind{Kind: "Namespace"},
			&corev1.Namespace{ObjectMeta: objMeta("kube-system"), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}},
			[]interface{}{"kube-system", "Active", "10m"}},
		{"secret", schema.GroupKind{Kind: "Secret"},
			&corev1.Secret{ObjectMeta: objMeta("tls"), Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": nil, "tls.key": nil}},
			[]interface{}{"tls", "kubernetes.io/tls", int64(2), "10m"}},
		{"configmap", schema.GroupKind{Kind: "ConfigMap"},
			&corev1.ConfigMap{ObjectMeta: objMeta("cfg"), Data: map[string]string{"a": "1"}, BinaryData: map[string][]byte{"b": nil}},
			[]interface{}{"cfg", int64(2), "10m"}},
		{"endpoints", schema.GroupKind{Kind: "Endpoints"},
			&corev1.Endpoints{ObjectMeta: objMeta("web"), Subsets: []corev1.EndpointSubset{{
				Addresses: []corev1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}, {IP: "10.0.0.3"}, {IP: "10.0.0.4"}},
				Ports:     []corev1.EndpointPort{{Port: 8080}},
			}}},
			[]interface{}{"web", "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 1 more...", "10m"}},
		{"endpoints empty", schema.GroupKind{Kind: "Endpoints"}, &corev1.Endpoints{ObjectMeta: objMeta("web")},
			[]interface{}{"web", "<none>", "10m"}},
		{"pvc bound", schema.GroupKind{Kind: "PersistentVolumeClaim"}, &corev1.PersistentVolumeClaim{
			ObjectMeta: objMeta("data"),
			Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-1", StorageClassName: ptr("local-path"),
				VolumeMode: ptr(corev1.PersistentVolumeFilesystem)},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOnce},
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
		}, []interface{}{"data", "Bound", "pv-1", "1Gi", "RWO,RWX", "local-path", "<unset>", "10m", "Filesystem"}},
		{"job running", schema.GroupKind{Group: "batch", Kind: "Job"}, &batchv1.Job{
			ObjectMeta: objMeta("pi"),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1)), Parallelism: ptr(int32(1))},
			Status:     batchv1.JobStatus{StartTime: ptr(ago(90 * time.Second))},
		}, []interface{}{"pi", "Running", "0/1", "90s", "10m", "", "", "<none>"}},
		{"job complete", schema.GroupKind{Group: "batch", Kind: "Job"}, &batchv1.Job{
			ObjectMeta: objMeta("pi"),
			Spec:       batchv1.JobSpec{Completions: ptr(int32(1))},
			Status: batchv1.JobStatus{Succeeded: 1, StartTime: ptr(ago(5 * time.Minute)), CompletionTime: ptr(ago(4 * time.Minute)),
				Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}},
		}, []interface{}{"pi", "Complete", "1/1", "60s", "10m", "", "", "<none>"}},
		{"cronjob", schema.GroupKind{Group: "batch", Kind: "CronJob"}, &batchv1.CronJob{
			ObjectMeta: objMeta("tick"),
			Spec:       batchv1.CronJobSpec{Schedule: "*/1 * * * *", Suspend: ptr(false)},
			Status:     batchv1.CronJobStatus{LastScheduleTime: ptr(ago(30 * time.Second))},
		}, []interface{}{"tick", "*/1 * * * *", "<none>", "False", int64(0), "30s", "10m", "", "", "<none>"}},
		{"core event", schema.GroupKind{Kind: "Event"}, &corev1.Event{
			ObjectMeta:     objMeta("web.1"),
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web", FieldPath: "spec.containers{app}"},
			Reason:         "Pulled", Message: "Container image pulled\n", Type: corev1.EventTypeNormal,
			Source:         corev1.EventSource{Component: "kubelet", Host: "n1"},
			FirstTimestamp: ago(3 * time.Minute), LastTimestamp: ago(time.Minute), Count: 4,
		}, []interface{}{"60s", "Normal", "Pulled", "pod/web", "spec.containers{app}", "kubelet, n1", "Container image pulled", "3m", int64(4), "web.1"}},
		{"events.k8s.io event", schema.GroupKind{Group: "events.k8s.io", Kind: "Event"}, &eventsv1.Event{
			ObjectMeta: objMeta("web.2"),
			EventTime:  metav1.NewMicroTime(now.Add(-2 * time.Minute)),
			Regarding:  corev1.ObjectReference{Kind: "Node", Name: "n1"},
			Reason:     "Starting", Note: "Starting kubelet.", Type: corev1.EventTypeNormal,
			ReportingController: "kubelet", ReportingInstance: "n1",
		}, []interface{}{"2m", "Normal", "Starting", "node/n1", "", "kubelet, n1", "Starting kubelet.", "2m", int64(1), "web.2"}},
		{"ingress", schema.GroupKind{Group: "networking.k8s.io", Kind: "Ingress"}, &networkingv1.Ingress{
			ObjectMeta: objMeta("site"),
			Spec: networkingv1.IngressSpec{IngressClassName: ptr("traefik"), TLS: []networkingv1.IngressTLS{{}},
				Rules: []networkingv1.IngressRule{{Host: "a.example.com"}, {}, {Host: "b.example.com"}, {Host: "c.example.com"}, {Host: "d.example.com"}}},
			Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.168.0.2"}}}},
		}, []interface{}{"site", "traefik", "a.example.com,b.example.com,c.example.com + 2 more...", "192.168.0.2", "80, 443", "10m"}},
		{"rolebinding", schema.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}, &rbacv1.RoleBinding{
			ObjectMeta: objMeta("rb"),
			RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: "view"},
			Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}, {Kind: "Group", Name: "devs"}, {Kind: "User", Name: "bob"},
				{Kind: "ServiceAccount", Namespace: "ci", Name: "builder"}},
		}, []interface{}{"rb", "ClusterRole/view", "10m", "alice, bob", "devs", "ci/builder"}},
		{"apiservice local", schema.GroupKind{Group: "apiregistration.k8s.io", Kind: "APIService"}, &apiregistrationv1.APIService{
			ObjectMeta: objMeta("v1.apps"),
			Status: apiregistrationv1.APIServiceStatus{Conditions: []apiregistrationv1.APIServiceCondition{
				{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionTrue, Reason: "Local"}}},
		}, []interface{}{"v1.apps", "Local", "True", "10m"}},
		{"apiservice unavailable", schema.GroupKind{Group: "apiregistration.k8s.io", Kind: "APIService"}, &apiregistrationv1.APIService{
			ObjectMeta: objMeta("v1beta1.metrics.k8s.io"),
			Spec:       apiregistrationv1.APIServiceSpec{Service: &apiregistrationv1.ServiceReference{Namespace: "kube-system", Name: "metrics-server"}},
			Status: apiregistrationv1.APIServiceStatus{Conditions: []apiregistrationv1.APIServiceCondition{
				{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionFalse, Reason: "MissingEndpoints"}}},
		}, []interface{}{"v1beta1.metrics.k8s.io", "kube-system/metrics-server", "False (MissingEndpoints)", "10m"}},
		{"hpa v2", schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}, &autoscalingv2.HorizontalPodAutoscaler{
			ObjectMeta: objMeta("web"),
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MinReplicas:    ptr(int32(1)), MaxReplicas: 5,
				Metrics: []autoscalingv2.MetricSpec{
					{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceCPU,
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(50))}}},
					{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr(mustQuantity("100Mi"))}}},
					{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
						Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr(mustQuantity("1k"))}}},
				},
			},
			Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: 2, CurrentMetrics: []autoscalingv2.MetricStatus{
				{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricStatus{Name: corev1.ResourceCPU,
					Current: autoscalingv2.MetricValueStatus{AverageUtilization: ptr(int32(20))}}},
			}},
		}, []interface{}{"web", "Deployment/web", "cpu: 20%/50%, memory: <unknown>/100Mi + 1 more...", "1", int64(5), int64(2), "10m"}},
		{"hpa v1", schema.GroupKind{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}, &autoscalingv1.HorizontalPodAutoscaler{
			ObjectMeta: objMeta("web"),
			Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: "Deployment", Name: "web"},
				MaxReplicas:    3, TargetCPUUtilizationPercentage: ptr(int32(80)),
			},
			Status: autoscalingv1.HorizontalPodAutoscalerStatus{CurrentReplicas: 1},
		}, []interface{}{"web", "Deployment/web", "cpu: <unknown>/80%", "<unset>", int64(3), int64(1), "10m"}},
		{"wrong type falls back to the name", schema.GroupKind{Kind: "Namespace"}, &corev1.Pod{ObjectMeta: objMeta("odd")},
			[]interface{}{"odd", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if row := cells(t, tt.gk, tt.obj); !reflect.DeepEqual(row, tt.want) {
				t.Errorf("row = %#v\nwant  %#v", row, tt.want)
			}
		})
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		name string
		t    metav1.Time
		want string
	}{
		{"unset", metav1.Time{}, "<unknown>"},
		{"seconds", ago(42 * time.Second), "42s"},
		{"minutes and seconds", ago(3*time.Minute + 20*time.Second), "3m20s"},
		{"hours and minutes", ago(5*time.Hour + 7*time.Minute), "5h7m"},
		{"days and hours", ago(50 * time.Hour), "2d2h"},
		{"years", ago(3 * 365 * 24 * time.Hour), "3y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := since(tt.t, now); got != tt.want {
				t.Errorf("since = %q, want %q", got, tt.want)
			}
		})
	}
}

func mustQuantity(s string) resource.Quantity { return resource.MustParse(s) }
