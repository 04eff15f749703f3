package printers

import (
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	resourcev1 "k8s.io/api/resource/v1"
	storagemigrationv1 "k8s.io/api/storagemigration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// registerNewer adds the kinds whose printers came with v1.35–v1.37, and CRDs, with the columns
// upstream v1.37 prints.
func registerNewer(s *Set) {
	s.add(schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Scope", "string", "Cluster/Namespaced"),
		col("Versions", "string", "Served versions"),
		{Name: "Created At", Type: "date", Description: metaDoc["creationTimestamp"]},
		wide("Group", "string", "API group"),
		wide("Kind", "string", "CustomResource kind"),
		wide("ShortNames", "string", "Short names"),
		wide("Established", "boolean", "Established status"),
	}, func(o *apiextensionsv1.CustomResourceDefinition, _ time.Time) []interface{} {
		var served []string
		for _, v := range o.Spec.Versions {
			if v.Served {
				served = append(served, v.Name)
			}
		}
		established := false
		for _, c := range o.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		return []interface{}{o.Name, string(o.Spec.Scope), strings.Join(served, ","), o.CreationTimestamp.UTC().Format(time.RFC3339),
			o.Spec.Group, o.Spec.Names.Kind, strings.Join(o.Spec.Names.ShortNames, ","), established}
	}))

	pcr := certificatesv1.PodCertificateRequestSpec{}.SwaggerDoc()
	s.add(schema.GroupKind{Group: "certificates.k8s.io", Kind: "PodCertificateRequest"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("PodName", "string", pcr["podName"]),
		col("ServiceAccountName", "string", pcr["serviceAccountName"]),
		col("NodeName", "string", pcr["nodeName"]),
		col("SignerName", "string", pcr["signerName"]),
		col("State", "string", "Is the request Pending, Issued, Denied, or Failed?"),
		col("UnverifiedUserAnnotations", "string", pcr["unverifiedUserAnnotations"]),
	}, func(o *certificatesv1.PodCertificateRequest, _ time.Time) []interface{} {
		state := "Pending"
		for _, c := range o.Status.Conditions {
			if c.Status == metav1.ConditionTrue && (c.Type == "Issued" || c.Type == "Denied" || c.Type == "Failed") {
				state = c.Type
			}
		}
		var annotations []string
		for k, v := range o.Spec.UnverifiedUserAnnotations {
			annotations = append(annotations, k+"="+v)
		}
		return []interface{}{o.Name, o.Spec.PodName, o.Spec.ServiceAccountName, string(o.Spec.NodeName), o.Spec.SignerName, state, strings.Join(annotations, ",")}
	}))

	taint := resourcev1.DeviceTaint{}.SwaggerDoc()
	s.add(schema.GroupKind{Group: "resource.k8s.io", Kind: "DeviceTaintRule"}, typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Key", "string", taint["key"]),
		col("Value", "string", taint["value"]),
		col("Effect", "string", taint["effect"]),
		col("TimeAdded", "string", taint["timeAdded"]),
		ageColumn(),
	}, func(o *resourcev1.DeviceTaintRule, now time.Time) []interface{} {
		added := "<unset>"
		if o.Spec.Taint.TimeAdded != nil {
			added = o.Spec.Taint.TimeAdded.UTC().Format(time.RFC3339)
		}
		return []interface{}{o.Name, o.Spec.Taint.Key, o.Spec.Taint.Value, string(o.Spec.Taint.Effect), added, age(o, now)}
	}))

	s.add(schema.GroupKind{Group: "storagemigration.k8s.io", Kind: "StorageVersionMigration"}, typed([]metav1.TableColumnDefinition{
		// Upstream's Name column here carries no name format.
		col("Name", "string", metaDoc["name"]),
		col("Resource", "string", "GroupResource to migrate"),
		col("Status", "string", "Status of the migration"),
	}, func(o *storagemigrationv1.StorageVersionMigration, _ time.Time) []interface{} {
		status := "Pending"
		for _, c := range o.Status.Conditions {
			if c.Status == metav1.ConditionTrue {
				status = c.Type
			}
		}
		return []interface{}{o.Name, o.Spec.Resource.String(), status}
	}))
}
