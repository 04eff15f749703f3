package strategy

import (
	"github.com/keelson/keelson/apis/catalogue"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// rulesFor returns the kind-specific rules of a resource.
func rulesFor(res *catalogue.Resource) Rules {
	switch res.Group + "/" + res.Kind {
	case "/Namespace":
		return Rules{NameFn: apivalidation.ValidateNamespaceName, Default: defaultNamespace, PrepareForUpdate: keepNamespaceFinalizers}
	case "/Service":
		return Rules{NameFn: apivalidation.NameIsDNS1035Label, Default: defaultService, Validate: validateService, ValidateUpdate: validateServiceUpdate, AllowCreateOnUpdate: true}
	case "/Pod":
		return Rules{Generation: true, Default: defaultPod, Validate: validatePod, ValidateUpdate: validatePodUpdate,
			Subresources: map[string]SubresourceRules{
				"ephemeralcontainers": {Keep: keepAllButEphemeralContainers, ValidateUpdate: validateEphemeralContainersUpdate},
				"resize":              {Keep: keepAllButResources},
			}}
	case "/Node":
		return Rules{Validate: validateNode, ValidateUpdate: validateNodeUpdate}
	case "/ConfigMap":
		return Rules{Validate: validateConfigMap, ValidateUpdate: validateConfigMapUpdate}
	case "/Secret":
		return Rules{Default: defaultSecret, Validate: validateSecret, ValidateUpdate: validateSecretUpdate}
	case "/Event":
		return Rules{AllowCreateOnUpdate: true, Validate: validateEvent, ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateEvent(obj) }}
	case "/Endpoints", "/LimitRange", "coordination.k8s.io/Lease":
		return Rules{AllowCreateOnUpdate: true}
	case "discovery.k8s.io/EndpointSlice":
		return Rules{AllowCreateOnUpdate: true, Generation: true, PrepareForUpdate: bumpEndpointSliceGeneration}
	case "/ReplicationController":
		return Rules{Generation: true, Default: defaultReplicationController}
	case "apps/Deployment":
		return Rules{Generation: true, Default: defaultDeployment, Validate: validateDeployment, ValidateUpdate: validateDeploymentUpdate}
	case "apps/ReplicaSet", "apps/StatefulSet":
		return Rules{Generation: true, Default: defaultWorkload, Validate: validateWorkload, ValidateUpdate: validateWorkloadUpdate}
	case "apps/DaemonSet":
		return Rules{Generation: true, Default: defaultWorkload, Validate: validateWorkload, ValidateUpdate: validateWorkloadUpdate,
			PrepareForCreate: firstTemplateGeneration, PrepareForUpdate: nextTemplateGeneration, PrepareForStatusUpdate: nextTemplateGeneration}
	case "batch/Job":
		return Rules{Generation: true, Default: defaultJob, Validate: validateJob, ValidateUpdate: validateJobUpdate,
			Subresources: map[string]SubresourceRules{"status": {Keep: keepJobSpec, ValidateUpdate: validateJobStatusUpdate}}}
	case "batch/CronJob":
		return Rules{Generation: true, Default: defaultCronJob, Validate: validateCronJob}
	case "autoscaling/HorizontalPodAutoscaler":
		return Rules{Generation: true, Default: defaultHPA}
	case "policy/PodDisruptionBudget", "networking.k8s.io/NetworkPolicy",
		"apiextensions.k8s.io/CustomResourceDefinition", "admissionregistration.k8s.io/ValidatingAdmissionPolicy",
		"admissionregistration.k8s.io/MutatingAdmissionPolicy", "networking.k8s.io/Ingress":
		return Rules{Generation: true}
	case "rbac.authorization.k8s.io/Role", "rbac.authorization.k8s.io/ClusterRole",
		"rbac.authorization.k8s.io/RoleBinding", "rbac.authorization.k8s.io/ClusterRoleBinding":
		return Rules{NameFn: nameIsPathSegment, AllowCreateOnUpdate: true}
	case "certificates.k8s.io/CertificateSigningRequest":
		return csrRules()
	case "networking.k8s.io/IPAddress", "apiregistration.k8s.io/APIService":
		return Rules{NameFn: nameIsPathSegment}
	}
	return Rules{}
}

// bumpEndpointSliceGeneration moves an EndpointSlice's generation on when anything but its
// metadata changes, or its labels do, as upstream does: the EndpointSlice controllers compare
// generations to tell their own writes from others'.
func bumpEndpointSliceGeneration(obj, old runtime.Object) {
	s, was := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
	a, b := *s, *was
	a.ObjectMeta, b.ObjectMeta = metav1.ObjectMeta{}, metav1.ObjectMeta{}
	if !apiequality.Semantic.DeepEqual(a, b) || !apiequality.Semantic.DeepEqual(s.Labels, was.Labels) {
		s.Generation = was.Generation + 1
	}
}

// keepNamespaceFinalizers leaves spec.finalizers to the finalize subresource, as upstream does.
func keepNamespaceFinalizers(obj, old runtime.Object) {
	obj.(*corev1.Namespace).Spec.Finalizers = old.(*corev1.Namespace).Spec.Finalizers
}
