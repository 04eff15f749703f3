package catalogue

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func gvr(group, version, resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
}

var (
	status     = Subresource{Name: "status", Verbs: []string{"get", "patch", "update"}}
	scaleV1    = Subresource{Name: "scale", Kind: schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, Verbs: []string{"get", "patch", "update"}}
	allCat     = []string{"all"}
	apiExtsCat = []string{"api-extensions"}
)

// Builtin returns the resources kube-apiserver v1.37 serves by default, in the order of its discovery.
func Builtin() []*Resource {
	return []*Resource{
		// core/v1
		{GroupVersionResource: gvr("", "v1", "bindings"), Kind: "Binding", Namespaced: true, Verbs: CreateOnly, Virtual: true},
		{GroupVersionResource: gvr("", "v1", "componentstatuses"), Kind: "ComponentStatus", ShortNames: []string{"cs"}, Verbs: []string{"get", "list"}, Virtual: true},
		{GroupVersionResource: gvr("", "v1", "configmaps"), Kind: "ConfigMap", Namespaced: true, ShortNames: []string{"cm"}},
		{GroupVersionResource: gvr("", "v1", "endpoints"), Kind: "Endpoints", Namespaced: true, ShortNames: []string{"ep"}, EtcdPrefix: "services/endpoints"},
		{GroupVersionResource: gvr("", "v1", "events"), Kind: "Event", Namespaced: true, ShortNames: []string{"ev"}, Fields: coreEventFields},
		{GroupVersionResource: gvr("", "v1", "limitranges"), Kind: "LimitRange", Namespaced: true, ShortNames: []string{"limits"}},
		{GroupVersionResource: gvr("", "v1", "namespaces"), Kind: "Namespace", ShortNames: []string{"ns"}, Verbs: NoCollectionDels,
			Subresources: []Subresource{{Name: "finalize", Verbs: []string{"update"}}, status}, Fields: namespaceFields},
		{GroupVersionResource: gvr("", "v1", "nodes"), Kind: "Node", ShortNames: []string{"no"}, EtcdPrefix: "minions",
			Subresources: []Subresource{{Name: "proxy", Kind: schema.GroupVersionKind{Version: "v1", Kind: "NodeProxyOptions"}, Verbs: []string{"create", "delete", "get", "patch", "update"}}, status}, Fields: nodeFields},
		{GroupVersionResource: gvr("", "v1", "persistentvolumeclaims"), Kind: "PersistentVolumeClaim", Namespaced: true, ShortNames: []string{"pvc"}, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("", "v1", "persistentvolumes"), Kind: "PersistentVolume", ShortNames: []string{"pv"}, Subresources: []Subresource{status}, Fields: pvFields},
		{GroupVersionResource: gvr("", "v1", "pods"), Kind: "Pod", Namespaced: true, ShortNames: []string{"po"}, Categories: allCat, Fields: podFields,
			Subresources: []Subresource{
				{Name: "attach", Kind: schema.GroupVersionKind{Version: "v1", Kind: "PodAttachOptions"}, Verbs: []string{"create", "get"}},
				{Name: "binding", Kind: schema.GroupVersionKind{Version: "v1", Kind: "Binding"}, Verbs: []string{"create"}},
				{Name: "ephemeralcontainers", Verbs: []string{"get", "patch", "update"}},
				{Name: "eviction", Kind: schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "Eviction"}, Verbs: []string{"create"}},
				{Name: "exec", Kind: schema.GroupVersionKind{Version: "v1", Kind: "PodExecOptions"}, Verbs: []string{"create", "get"}},
				{Name: "log", Verbs: []string{"get"}},
				{Name: "portforward", Kind: schema.GroupVersionKind{Version: "v1", Kind: "PodPortForwardOptions"}, Verbs: []string{"create", "get"}},
				{Name: "proxy", Kind: schema.GroupVersionKind{Version: "v1", Kind: "PodProxyOptions"}, Verbs: []string{"create", "delete", "get", "patch", "update"}},
				{Name: "resize", Verbs: []string{"get", "patch", "update"}},
				status,
			}},
		{GroupVersionResource: gvr("", "v1", "podtemplates"), Kind: "PodTemplate", Namespaced: true},
		{GroupVersionResource: gvr("", "v1", "replicationcontrollers"), Kind: "ReplicationController", Namespaced: true, ShortNames: []string{"rc"}, Categories: allCat,
			EtcdPrefix: "controllers", Subresources: []Subresource{scaleV1, status}, Fields: replicasFields},
		{GroupVersionResource: gvr("", "v1", "resourcequotas"), Kind: "ResourceQuota", Namespaced: true, ShortNames: []string{"quota"}, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("", "v1", "secrets"), Kind: "Secret", Namespaced: true, Fields: secretFields},
		{GroupVersionResource: gvr("", "v1", "serviceaccounts"), Kind: "ServiceAccount", Namespaced: true, ShortNames: []string{"sa"},
			Subresources: []Subresource{{Name: "token", Kind: schema.GroupVersionKind{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}, Verbs: []string{"create"}}}},
		{GroupVersionResource: gvr("", "v1", "services"), Kind: "Service", Namespaced: true, ShortNames: []string{"svc"}, Categories: allCat, EtcdPrefix: "services/specs",
			Subresources: []Subresource{{Name: "proxy", Kind: schema.GroupVersionKind{Version: "v1", Kind: "ServiceProxyOptions"}, Verbs: []string{"create", "delete", "get", "patch", "update"}}, status}, Fields: serviceFields},

		// admissionregistration.k8s.io/v1
		{GroupVersionResource: gvr("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicies"), Kind: "MutatingAdmissionPolicy", Categories: apiExtsCat},
		{GroupVersionResource: gvr("admissionregistration.k8s.io", "v1", "mutatingadmissionpolicybindings"), Kind: "MutatingAdmissionPolicyBinding", Categories: apiExtsCat},
		{GroupVersionResource: gvr("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"), Kind: "MutatingWebhookConfiguration", Categories: apiExtsCat},
		{GroupVersionResource: gvr("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies"), Kind: "ValidatingAdmissionPolicy", Categories: apiExtsCat, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings"), Kind: "ValidatingAdmissionPolicyBinding", Categories: apiExtsCat},
		{GroupVersionResource: gvr("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"), Kind: "ValidatingWebhookConfiguration", Categories: apiExtsCat},

		// apiextensions.k8s.io/v1
		{GroupVersionResource: gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"), Kind: "CustomResourceDefinition", ShortNames: []string{"crd", "crds"}, Categories: apiExtsCat,
			EtcdPrefix: "apiextensions.k8s.io/customresourcedefinitions", Subresources: []Subresource{status}},

		// apiregistration.k8s.io/v1
		{GroupVersionResource: gvr("apiregistration.k8s.io", "v1", "apiservices"), Kind: "APIService", Categories: apiExtsCat,
			EtcdPrefix: "apiregistration.k8s.io/apiservices", Subresources: []Subresource{status}},

		// apps/v1
		{GroupVersionResource: gvr("apps", "v1", "controllerrevisions"), Kind: "ControllerRevision", Namespaced: true},
		{GroupVersionResource: gvr("apps", "v1", "daemonsets"), Kind: "DaemonSet", Namespaced: true, ShortNames: []string{"ds"}, Categories: allCat, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("apps", "v1", "deployments"), Kind: "Deployment", Namespaced: true, ShortNames: []string{"deploy"}, Categories: allCat, Subresources: []Subresource{scaleV1, status}},
		{GroupVersionResource: gvr("apps", "v1", "replicasets"), Kind: "ReplicaSet", Namespaced: true, ShortNames: []string{"rs"}, Categories: allCat, Subresources: []Subresource{scaleV1, status}, Fields: replicasFields},
		{GroupVersionResource: gvr("apps", "v1", "statefulsets"), Kind: "StatefulSet", Namespaced: true, ShortNames: []string{"sts"}, Categories: allCat, Subresources: []Subresource{scaleV1, status}},

		// authentication.k8s.io/v1
		{GroupVersionResource: gvr("authentication.k8s.io", "v1", "selfsubjectreviews"), Kind: "SelfSubjectReview", Verbs: CreateOnly, Virtual: true},
		{GroupVersionResource: gvr("authentication.k8s.io", "v1", "tokenreviews"), Kind: "TokenReview", Verbs: CreateOnly, Virtual: true},

		// authorization.k8s.io/v1
		{GroupVersionResource: gvr("authorization.k8s.io", "v1", "localsubjectaccessreviews"), Kind: "LocalSubjectAccessReview", Namespaced: true, Verbs: CreateOnly, Virtual: true},
		{GroupVersionResource: gvr("authorization.k8s.io", "v1", "selfsubjectaccessreviews"), Kind: "SelfSubjectAccessReview", Verbs: CreateOnly, Virtual: true},
		{GroupVersionResource: gvr("authorization.k8s.io", "v1", "selfsubjectrulesreviews"), Kind: "SelfSubjectRulesReview", Verbs: CreateOnly, Virtual: true},
		{GroupVersionResource: gvr("authorization.k8s.io", "v1", "subjectaccessreviews"), Kind: "SubjectAccessReview", Verbs: CreateOnly, Virtual: true},

		// autoscaling/v2 (preferred) and v1, one storage
		{GroupVersionResource: gvr("autoscaling", "v2", "horizontalpodautoscalers"), Kind: "HorizontalPodAutoscaler", Namespaced: true, ShortNames: []string{"hpa"}, Categories: allCat, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("autoscaling", "v1", "horizontalpodautoscalers"), Kind: "HorizontalPodAutoscaler", Namespaced: true, ShortNames: []string{"hpa"}, Categories: allCat, Subresources: []Subresource{status},
			StorageVersion: schema.GroupVersion{Group: "autoscaling", Version: "v2"}},

		// batch/v1
		{GroupVersionResource: gvr("batch", "v1", "cronjobs"), Kind: "CronJob", Namespaced: true, ShortNames: []string{"cj"}, Categories: allCat, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("batch", "v1", "jobs"), Kind: "Job", Namespaced: true, Categories: allCat, Subresources: []Subresource{status}, Fields: jobFields},

		// certificates.k8s.io/v1
		{GroupVersionResource: gvr("certificates.k8s.io", "v1", "certificatesigningrequests"), Kind: "CertificateSigningRequest", ShortNames: []string{"csr"},
			Subresources: []Subresource{{Name: "approval", Verbs: []string{"get", "patch", "update"}}, status}, Fields: csrFields},
		{GroupVersionResource: gvr("certificates.k8s.io", "v1", "clustertrustbundles"), Kind: "ClusterTrustBundle"},
		{GroupVersionResource: gvr("certificates.k8s.io", "v1", "podcertificaterequests"), Kind: "PodCertificateRequest", Namespaced: true, Subresources: []Subresource{status}},

		// coordination.k8s.io/v1
		{GroupVersionResource: gvr("coordination.k8s.io", "v1", "leases"), Kind: "Lease", Namespaced: true},

		// discovery.k8s.io/v1
		{GroupVersionResource: gvr("discovery.k8s.io", "v1", "endpointslices"), Kind: "EndpointSlice", Namespaced: true},

		// events.k8s.io/v1, stored with core events
		{GroupVersionResource: gvr("events.k8s.io", "v1", "events"), Kind: "Event", Namespaced: true, ShortNames: []string{"ev"},
			StorageVersion: schema.GroupVersion{Version: "v1"}, Fields: coreEventFields},

		// flowcontrol.apiserver.k8s.io/v1
		{GroupVersionResource: gvr("flowcontrol.apiserver.k8s.io", "v1", "flowschemas"), Kind: "FlowSchema", Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("flowcontrol.apiserver.k8s.io", "v1", "prioritylevelconfigurations"), Kind: "PriorityLevelConfiguration", Subresources: []Subresource{status}},

		// networking.k8s.io/v1
		{GroupVersionResource: gvr("networking.k8s.io", "v1", "ingressclasses"), Kind: "IngressClass"},
		{GroupVersionResource: gvr("networking.k8s.io", "v1", "ingresses"), Kind: "Ingress", Namespaced: true, ShortNames: []string{"ing"}, EtcdPrefix: "ingress", Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("networking.k8s.io", "v1", "ipaddresses"), Kind: "IPAddress", ShortNames: []string{"ip"}},
		{GroupVersionResource: gvr("networking.k8s.io", "v1", "networkpolicies"), Kind: "NetworkPolicy", Namespaced: true, ShortNames: []string{"netpol"}},
		{GroupVersionResource: gvr("networking.k8s.io", "v1", "servicecidrs"), Kind: "ServiceCIDR", Subresources: []Subresource{status}},

		// node.k8s.io/v1
		{GroupVersionResource: gvr("node.k8s.io", "v1", "runtimeclasses"), Kind: "RuntimeClass"},

		// policy/v1
		{GroupVersionResource: gvr("policy", "v1", "poddisruptionbudgets"), Kind: "PodDisruptionBudget", Namespaced: true, ShortNames: []string{"pdb"}, Subresources: []Subresource{status}},

		// rbac.authorization.k8s.io/v1
		{GroupVersionResource: gvr("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), Kind: "ClusterRoleBinding"},
		{GroupVersionResource: gvr("rbac.authorization.k8s.io", "v1", "clusterroles"), Kind: "ClusterRole"},
		{GroupVersionResource: gvr("rbac.authorization.k8s.io", "v1", "rolebindings"), Kind: "RoleBinding", Namespaced: true},
		{GroupVersionResource: gvr("rbac.authorization.k8s.io", "v1", "roles"), Kind: "Role", Namespaced: true},

		// resource.k8s.io/v1
		{GroupVersionResource: gvr("resource.k8s.io", "v1", "deviceclasses"), Kind: "DeviceClass"},
		{GroupVersionResource: gvr("resource.k8s.io", "v1", "devicetaintrules"), Kind: "DeviceTaintRule", Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("resource.k8s.io", "v1", "resourceclaims"), Kind: "ResourceClaim", Namespaced: true, Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("resource.k8s.io", "v1", "resourceclaimtemplates"), Kind: "ResourceClaimTemplate", Namespaced: true},
		{GroupVersionResource: gvr("resource.k8s.io", "v1", "resourceslices"), Kind: "ResourceSlice"},

		// scheduling.k8s.io/v1
		{GroupVersionResource: gvr("scheduling.k8s.io", "v1", "priorityclasses"), Kind: "PriorityClass", ShortNames: []string{"pc"}},

		// storagemigration.k8s.io/v1
		{GroupVersionResource: gvr("storagemigration.k8s.io", "v1", "storageversionmigrations"), Kind: "StorageVersionMigration", Subresources: []Subresource{status}},

		// storage.k8s.io/v1
		{GroupVersionResource: gvr("storage.k8s.io", "v1", "csidrivers"), Kind: "CSIDriver"},
		{GroupVersionResource: gvr("storage.k8s.io", "v1", "csinodes"), Kind: "CSINode", Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("storage.k8s.io", "v1", "csistoragecapacities"), Kind: "CSIStorageCapacity", Namespaced: true},
		{GroupVersionResource: gvr("storage.k8s.io", "v1", "storageclasses"), Kind: "StorageClass", ShortNames: []string{"sc"}},
		{GroupVersionResource: gvr("storage.k8s.io", "v1", "volumeattachments"), Kind: "VolumeAttachment", Subresources: []Subresource{status}},
		{GroupVersionResource: gvr("storage.k8s.io", "v1", "volumeattributesclasses"), Kind: "VolumeAttributesClass", ShortNames: []string{"vac"}},
	}
}

// The field selectors below are the ones upstream's strategies expose (GetAttrs / ToSelectableFields).

func podFields(obj runtime.Object) fields.Set {
	p := obj.(*corev1.Pod)
	f := fields.Set{
		"spec.nodeName":            p.Spec.NodeName,
		"spec.restartPolicy":       string(p.Spec.RestartPolicy),
		"spec.schedulerName":       p.Spec.SchedulerName,
		"spec.serviceAccountName":  p.Spec.ServiceAccountName,
		"spec.hostNetwork":         strconv.FormatBool(p.Spec.HostNetwork),
		"status.phase":             string(p.Status.Phase),
		"status.nominatedNodeName": p.Status.NominatedNodeName,
	}
	// podIP is only selectable on its first address, as upstream.
	if len(p.Status.PodIPs) > 0 {
		f["status.podIP"] = p.Status.PodIPs[0].IP
	} else {
		f["status.podIP"] = ""
	}
	return f
}

func nodeFields(obj runtime.Object) fields.Set {
	return fields.Set{"spec.unschedulable": strconv.FormatBool(obj.(*corev1.Node).Spec.Unschedulable)}
}

func namespaceFields(obj runtime.Object) fields.Set {
	return fields.Set{"status.phase": string(obj.(*corev1.Namespace).Status.Phase)}
}

func secretFields(obj runtime.Object) fields.Set {
	return fields.Set{"type": string(obj.(*corev1.Secret).Type)}
}

func serviceFields(obj runtime.Object) fields.Set {
	s := obj.(*corev1.Service)
	return fields.Set{"spec.clusterIP": s.Spec.ClusterIP, "spec.type": string(s.Spec.Type)}
}

func pvFields(obj runtime.Object) fields.Set {
	return fields.Set{"name": obj.(*corev1.PersistentVolume).Name}
}

func coreEventFields(obj runtime.Object) fields.Set {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return fields.Set{}
	}
	return fields.Set{
		"involvedObject.kind":            e.InvolvedObject.Kind,
		"involvedObject.namespace":       e.InvolvedObject.Namespace,
		"involvedObject.name":            e.InvolvedObject.Name,
		"involvedObject.uid":             string(e.InvolvedObject.UID),
		"involvedObject.apiVersion":      e.InvolvedObject.APIVersion,
		"involvedObject.resourceVersion": e.InvolvedObject.ResourceVersion,
		"involvedObject.fieldPath":       e.InvolvedObject.FieldPath,
		"reason":                         e.Reason,
		"reportingComponent":             e.ReportingController,
		"source":                         e.Source.Component,
		"type":                           e.Type,
	}
}

func replicasFields(obj runtime.Object) fields.Set {
	switch o := obj.(type) {
	case *corev1.ReplicationController:
		return fields.Set{"status.replicas": strconv.Itoa(int(o.Status.Replicas))}
	case *appsv1.ReplicaSet:
		return fields.Set{"status.replicas": strconv.Itoa(int(o.Status.Replicas))}
	}
	return fields.Set{}
}

func jobFields(obj runtime.Object) fields.Set {
	return fields.Set{"status.successful": strconv.Itoa(int(obj.(*batchv1.Job).Status.Succeeded))}
}

func csrFields(obj runtime.Object) fields.Set {
	return fields.Set{"spec.signerName": obj.(*certificatesv1.CertificateSigningRequest).Spec.SignerName}
}
