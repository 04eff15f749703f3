package printers

import (
	"fmt"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	certificatesv1alpha1 "k8s.io/api/certificates/v1alpha1"
	certificatesv1beta1 "k8s.io/api/certificates/v1beta1"
	coordinationv1 "k8s.io/api/coordination/v1"
	nodev1 "k8s.io/api/node/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	rbacv1beta1 "k8s.io/api/rbac/v1beta1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

func registerCluster(s *Set) {
	s.add(schema.GroupKind{Group: policyv1.GroupName, Kind: "PodDisruptionBudget"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Min Available", "string", "The minimum number of pods that must be available."),
		col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
		col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
		ageColumn(),
	}, func(o *policyv1.PodDisruptionBudget, now time.Time) []interface{} {
		minAvailable, maxUnavailable := "N/A", "N/A"
		if o.Spec.MinAvailable != nil {
			minAvailable = o.Spec.MinAvailable.String()
		}
		if o.Spec.MaxUnavailable != nil {
			maxUnavailable = o.Spec.MaxUnavailable.String()
		}
		return []interface{}{o.Name, minAvailable, maxUnavailable, int64(o.Status.DisruptionsAllowed), age(o, now)}
	}))

	s.add(schema.GroupKind{Group: coordinationv1.GroupName, Kind: "Lease"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Holder", "string", coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]),
		ageColumn(),
	}, func(o *coordinationv1.Lease, now time.Time) []interface{} {
		return []interface{}{o.Name, deref(o.Spec.HolderIdentity, ""), age(o, now)}
	}))

	pc := schedulingv1.PriorityClass{}.SwaggerDoc()
	s.add(schema.GroupKind{Group: schedulingv1.GroupName, Kind: "PriorityClass"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Value", "integer", pc["value"]),
		col("Global-Default", "boolean", pc["globalDefault"]),
		ageColumn(),
		col("PreemptionPolicy", "string", pc["preemptionPolicy"]),
	}, func(o *schedulingv1.PriorityClass, now time.Time) []interface{} {
		policy := ""
		if o.PreemptionPolicy != nil {
			policy = string(*o.PreemptionPolicy)
		}
		return []interface{}{o.Name, int64(o.Value), o.GlobalDefault, age(o, now), policy}
	}))

	s.add(schema.GroupKind{Group: nodev1.GroupName, Kind: "RuntimeClass"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		// Upstream looks this up in ObjectMeta's descriptions, which have none: it is empty.
		col("Handler", "string", metaDoc["handler"]),
		ageColumn(),
	}, func(o *nodev1.RuntimeClass, now time.Time) []interface{} {
		return []interface{}{o.Name, o.Handler, age(o, now)}
	}))

	registerRBAC(s)
	registerCertificates(s)

	s.add(schema.GroupKind{Group: apiregistrationv1.GroupName, Kind: "APIService"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Service", "string", "The reference to the service that hosts this API endpoint."),
		col("Available", "string", "Whether this service is available."),
		ageColumn(),
	}, func(o *apiregistrationv1.APIService, now time.Time) []interface{} {
		service := "Local"
		if o.Spec.Service != nil {
			service = o.Spec.Service.Namespace + "/" + o.Spec.Service.Name
		}
		status := string(apiregistrationv1.ConditionUnknown)
		for _, c := range o.Status.Conditions {
			if c.Type != apiregistrationv1.Available {
				continue
			}
			status = string(c.Status)
			if c.Status != apiregistrationv1.ConditionTrue && c.Reason != "" {
				status = fmt.Sprintf("%s (%s)", c.Status, c.Reason)
			}
			break
		}
		return []interface{}{o.Name, service, status, age(o, now)}
	}))
}

func registerRBAC(s *Set) {
	subjects := func(subjects []rbacv1.Subject) (users, groups, sas string) {
		var u, g, sa []string
		for _, s := range subjects {
			switch s.Kind {
			case rbacv1.ServiceAccountKind:
				sa = append(sa, s.Namespace+"/"+s.Name)
			case rbacv1.UserKind:
				u = append(u, s.Name)
			case rbacv1.GroupKind:
				g = append(g, s.Name)
			}
		}
		return strings.Join(u, ", "), strings.Join(g, ", "), strings.Join(sa, ", ")
	}
	bindingColumns := func(roleRef, what string) []metav1.TableColumnDefinition {
		return []metav1.TableColumnDefinition{
			nameColumn(),
			col("Role", "string", roleRef),
			ageColumn(),
			wide("Users", "string", "Users in the "+what),
			wide("Groups", "string", "Groups in the "+what),
			wide("ServiceAccounts", "string", "ServiceAccounts in the "+what),
		}
	}
	rbac := func(kind string) schema.GroupKind { return schema.GroupKind{Group: rbacv1.GroupName, Kind: kind} }

	s.add(rbac("RoleBinding"), typed(bindingColumns(rbacv1beta1.RoleBinding{}.SwaggerDoc()["roleRef"], "roleBinding"),
		func(o *rbacv1.RoleBinding, now time.Time) []interface{} {
			users, groups, sas := subjects(o.Subjects)
			return []interface{}{o.Name, o.RoleRef.Kind + "/" + o.RoleRef.Name, age(o, now), users, groups, sas}
		}))
	s.add(rbac("ClusterRoleBinding"), typed(bindingColumns(rbacv1beta1.ClusterRoleBinding{}.SwaggerDoc()["roleRef"], "clusterRoleBinding"),
		func(o *rbacv1.ClusterRoleBinding, now time.Time) []interface{} {
			users, groups, sas := subjects(o.Subjects)
			return []interface{}{o.Name, o.RoleRef.Kind + "/" + o.RoleRef.Name, age(o, now), users, groups, sas}
		}))
	// Role and ClusterRole keep the default Name / Created At columns, as upstream.
}

func registerCertificates(s *Set) {
	spec := certificatesv1beta1.CertificateSigningRequestSpec{}.SwaggerDoc()
	s.add(schema.GroupKind{Group: certificatesv1.GroupName, Kind: "CertificateSigningRequest"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		ageColumn(),
		col("SignerName", "string", spec["signerName"]),
		col("Requestor", "string", spec["request"]),
		col("RequestedDuration", "string", spec["expirationSeconds"]),
		col("Condition", "string", certificatesv1beta1.CertificateSigningRequestStatus{}.SwaggerDoc()["conditions"]),
	}, func(o *certificatesv1.CertificateSigningRequest, now time.Time) []interface{} {
		requested := "<none>"
		if o.Spec.ExpirationSeconds != nil {
			requested = duration.HumanDuration(time.Duration(*o.Spec.ExpirationSeconds) * time.Second)
		}
		return []interface{}{o.Name, age(o, now), orNone(o.Spec.SignerName), o.Spec.Username, requested, csrCondition(o)}
	}))

	s.add(schema.GroupKind{Group: certificatesv1.GroupName, Kind: "ClusterTrustBundle"}, printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("SignerName", "string", certificatesv1alpha1.ClusterTrustBundleSpec{}.SwaggerDoc()["signerName"]),
	},
		cellsOf(func(o *certificatesv1.ClusterTrustBundle, _ time.Time) []interface{} {
			return []interface{}{o.Name, orNone(o.Spec.SignerName)}
		})))
}

// csrCondition is "Approved", "Denied" or "Pending", then ",Failed" and ",Issued" as they apply.
func csrCondition(o *certificatesv1.CertificateSigningRequest) string {
	var approved, denied, failed bool
	for _, c := range o.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = true
		case certificatesv1.CertificateDenied:
			denied = true
		case certificatesv1.CertificateFailed:
			failed = true
		}
	}
	var status string
	switch {
	case denied:
		status = "Denied"
	case approved:
		status = "Approved"
	default:
		status = "Pending"
	}
	if failed {
		status += ",Failed"
	}
	if len(o.Status.Certificate) > 0 {
		status += ",Issued"
	}
	return status
}
