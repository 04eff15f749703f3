package printers

import (
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	paramKindDescription  = "ParamKind specifies the kind of resources used to parameterize this policy"
	policyNameDescription = "PolicyName indicates the policy definition which the policy binding binded to"
	paramRefDescription   = "ParamRef indicates the param resource which sets the configration param"
	webhooksDescription   = "Webhooks indicates the number of webhooks registered in this configuration"
)

// paramKindCell is "<apiVersion>/<kind>" of a policy's paramKind, or "<unset>".
func paramKindCell(set bool, apiVersion, kind string) string {
	if !set {
		return "<unset>"
	}
	return apiVersion + "/" + kind
}

// paramRefCell is "<namespace>/<name>" ("*/<name>" without namespace) or the selector of a
// binding's paramRef, or "<unset>".
func paramRefCell(set bool, name, namespace string, selector *metav1.LabelSelector) string {
	switch {
	case !set:
		return "<unset>"
	case name != "" && namespace != "":
		return namespace + "/" + name
	case name != "":
		// Whether the param is cluster-scoped is unknown here, so a name alone gets "*".
		return "*/" + name
	case selector != nil:
		return selector.String()
	}
	return "<unset>"
}

func registerAdmission(s *Set) {
	ar := func(kind string) schema.GroupKind {
		return schema.GroupKind{Group: admissionregistrationv1.GroupName, Kind: kind}
	}
	webhookColumns := []metav1.TableColumnDefinition{nameColumn(), col("Webhooks", "integer", webhooksDescription), ageColumn()}
	s.add(ar("ValidatingWebhookConfiguration"), typed(webhookColumns,
		func(o *admissionregistrationv1.ValidatingWebhookConfiguration, now time.Time) []interface{} {
			return []interface{}{o.Name, int64(len(o.Webhooks)), age(o, now)}
		}))
	s.add(ar("MutatingWebhookConfiguration"), typed(webhookColumns,
		func(o *admissionregistrationv1.MutatingWebhookConfiguration, now time.Time) []interface{} {
			return []interface{}{o.Name, int64(len(o.Webhooks)), age(o, now)}
		}))

	s.add(ar("ValidatingAdmissionPolicy"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Validations", "integer", "Validations indicates the number of validation rules defined in this configuration"),
		col("ParamKind", "string", paramKindDescription),
		ageColumn(),
	},
		cellsOf(func(o *admissionregistrationv1.ValidatingAdmissionPolicy, now time.Time) []interface{} {
			pk := o.Spec.ParamKind
			ok := pk != nil
			var v, k string
			if ok {
				v, k = pk.APIVersion, pk.Kind
			}
			return []interface{}{o.Name, int64(len(o.Spec.Validations)), paramKindCell(ok, v, k), age(o, now)}
		})))

	bindingColumns := []metav1.TableColumnDefinition{
		nameColumn(),
		col("PolicyName", "string", policyNameDescription),
		col("ParamRef", "string", paramRefDescription),
		ageColumn(),
	}
	s.add(ar("ValidatingAdmissionPolicyBinding"), printerOf(bindingColumns,
		cellsOf(func(o *admissionregistrationv1.ValidatingAdmissionPolicyBinding, now time.Time) []interface{} {
			pr := o.Spec.ParamRef
			ref := "<unset>"
			if pr != nil {
				ref = paramRefCell(true, pr.Name, pr.Namespace, pr.Selector)
			}
			return []interface{}{o.Name, o.Spec.PolicyName, ref, age(o, now)}
		})))

	s.add(ar("MutatingAdmissionPolicy"), printerOf([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Mutations", "integer", "Mutation indicates the number of mutations rules defined in this configuration"),
		col("ParamKind", "string", paramKindDescription),
		ageColumn(),
	},
		cellsOf(func(o *admissionregistrationv1.MutatingAdmissionPolicy, now time.Time) []interface{} {
			pk := o.Spec.ParamKind
			ok := pk != nil
			var v, k string
			if ok {
				v, k = pk.APIVersion, pk.Kind
			}
			return []interface{}{o.Name, int64(len(o.Spec.Mutations)), paramKindCell(ok, v, k), age(o, now)}
		})))

	s.add(ar("MutatingAdmissionPolicyBinding"), printerOf(bindingColumns,
		cellsOf(func(o *admissionregistrationv1.MutatingAdmissionPolicyBinding, now time.Time) []interface{} {
			ref := "<unset>"
			if pr := o.Spec.ParamRef; pr != nil {
				ref = paramRefCell(true, pr.Name, pr.Namespace, pr.Selector)
			}
			return []interface{}{o.Name, o.Spec.PolicyName, ref, age(o, now)}
		})))
}

func registerFlowControl(s *Set) {
	fc := func(kind string) schema.GroupKind {
		return schema.GroupKind{Group: flowcontrolv1.GroupName, Kind: kind}
	}
	fsSpec := flowcontrolv1.FlowSchemaSpec{}.SwaggerDoc()
	s.add(fc("FlowSchema"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("PriorityLevel", "string", flowcontrolv1.PriorityLevelConfigurationReference{}.SwaggerDoc()["name"]),
		col("MatchingPrecedence", "string", fsSpec["matchingPrecedence"]),
		col("DistinguisherMethod", "string", fsSpec["distinguisherMethod"]),
		ageColumn(),
		col("MissingPL", "string", "references a broken or non-existent PriorityLevelConfiguration"),
	}, func(o *flowcontrolv1.FlowSchema, now time.Time) []interface{} {
		method := "<none>"
		if o.Spec.DistinguisherMethod != nil {
			method = string(o.Spec.DistinguisherMethod.Type)
		}
		missing := "?"
		for _, c := range o.Status.Conditions {
			if c.Type == flowcontrolv1.FlowSchemaConditionDangling {
				missing = string(c.Status)
				break
			}
		}
		return []interface{}{o.Name, o.Spec.PriorityLevelConfiguration.Name, int64(o.Spec.MatchingPrecedence), method,
			age(o, now), missing}
	}))

	queuing := flowcontrolv1.QueuingConfiguration{}.SwaggerDoc()
	s.add(fc("PriorityLevelConfiguration"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Type", "string", flowcontrolv1.PriorityLevelConfigurationSpec{}.SwaggerDoc()["type"]),
		col("NominalConcurrencyShares", "string", flowcontrolv1.LimitedPriorityLevelConfiguration{}.SwaggerDoc()["nominalConcurrencyShares"]),
		col("Queues", "string", queuing["queues"]),
		col("HandSize", "string", queuing["handSize"]),
		col("QueueLengthLimit", "string", queuing["queueLengthLimit"]),
		ageColumn(),
	}, func(o *flowcontrolv1.PriorityLevelConfiguration, now time.Time) []interface{} {
		var ncs, queues, handSize, queueLengthLimit interface{} = "<none>", "<none>", "<none>", "<none>"
		if l := o.Spec.Limited; l != nil {
			// An unset share count is defaulted to 30 on write.
			shares := int64(30)
			if l.NominalConcurrencyShares != nil {
				shares = int64(*l.NominalConcurrencyShares)
			}
			ncs = shares
			if q := l.LimitResponse.Queuing; q != nil {
				queues, handSize, queueLengthLimit = int64(q.Queues), int64(q.HandSize), int64(q.QueueLengthLimit)
			}
		}
		return []interface{}{o.Name, string(o.Spec.Type), ncs, queues, handSize, queueLengthLimit, age(o, now)}
	}))
}
