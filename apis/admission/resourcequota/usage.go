// Package resourcequota measures what objects use of a ResourceQuota and refuses creates that
// would exceed one, as upstream's ResourceQuota admission plugin does. The measuring half (what an
// object uses, which quotas it falls under) is shared with the resourcequota controller, which
// computes status.used from all objects of a namespace.
package resourcequota

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/sets"
)

// CountName is the object-count resource of a kind: count/<resource> for the core group,
// count/<resource>.<group> otherwise.
func CountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName("count/" + gr.Resource)
	}
	return corev1.ResourceName("count/" + gr.Resource + "." + gr.Group)
}

// legacyCounts are the older names of some core object counts.
var legacyCounts = map[string]corev1.ResourceName{
	"configmaps":             corev1.ResourceConfigMaps,
	"resourcequotas":         corev1.ResourceQuotas,
	"replicationcontrollers": corev1.ResourceReplicationControllers,
	"secrets":                corev1.ResourceSecrets,
}

var (
	podsGR     = schema.GroupResource{Resource: "pods"}
	servicesGR = schema.GroupResource{Resource: "services"}
	pvcsGR     = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

// Evaluator measures one kind of object.
type Evaluator struct {
	GroupResource schema.GroupResource
}

// For returns the evaluator of a resource.
func For(gr schema.GroupResource) Evaluator { return Evaluator{GroupResource: gr} }

// podComputeResources are the names a pod is charged under besides its count and the
// requests.<prefixed> extended resources.
var podComputeResources = sets.New[corev1.ResourceName](
	corev1.ResourcePods, corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage,
	corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory, corev1.ResourceRequestsEphemeralStorage,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory, corev1.ResourceLimitsEphemeralStorage,
)

// Matching is the subset of names that this kind of object is charged under.
func (e Evaluator) Matching(names []corev1.ResourceName) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, n := range names {
		if e.handles(n) {
			out = append(out, n)
		}
	}
	return out
}

func (e Evaluator) handles(n corev1.ResourceName) bool {
	if n == CountName(e.GroupResource) {
		return true
	}
	switch e.GroupResource {
	case podsGR:
		s := string(n)
		rest, requested := strings.CutPrefix(s, corev1.DefaultResourceRequestsPrefix)
		return podComputeResources.Has(n) || strings.HasPrefix(s, corev1.ResourceHugePagesPrefix) ||
			requested && (strings.HasPrefix(rest, corev1.ResourceHugePagesPrefix) || extendedResource(corev1.ResourceName(rest)))
	case servicesGR:
		return n == corev1.ResourceServices || n == corev1.ResourceServicesNodePorts || n == corev1.ResourceServicesLoadBalancers
	case pvcsGR:
		s := string(n)
		return n == corev1.ResourcePersistentVolumeClaims || n == corev1.ResourceRequestsStorage ||
			strings.HasSuffix(s, storageClassSuffix+string(corev1.ResourcePersistentVolumeClaims)) ||
			strings.HasSuffix(s, storageClassSuffix+string(corev1.ResourceRequestsStorage))
	}
	if e.GroupResource.Group == "" {
		return legacyCounts[e.GroupResource.Resource] == n && n != ""
	}
	return false
}

const storageClassSuffix = ".storageclass.storage.k8s.io/"

// Usage is what obj is charged, at time now (a pod past its deletion grace is charged only its
// count).
func (e Evaluator) Usage(obj runtime.Object, now time.Time) corev1.ResourceList {
	one := *resource.NewQuantity(1, resource.DecimalSI)
	out := corev1.ResourceList{CountName(e.GroupResource): one}
	switch o := obj.(type) {
	case *corev1.Pod:
		if !chargesCompute(o, now) {
			return out
		}
		return Add(out, podUsage(o))
	case *corev1.Service:
		out[corev1.ResourceServices] = one
		out[corev1.ResourceServicesLoadBalancers] = resource.Quantity{Format: resource.DecimalSI}
		out[corev1.ResourceServicesNodePorts] = resource.Quantity{Format: resource.DecimalSI}
		switch o.Spec.Type {
		case corev1.ServiceTypeNodePort:
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(int64(len(o.Spec.Ports)), resource.DecimalSI)
		case corev1.ServiceTypeLoadBalancer:
			ports := int64(len(o.Spec.Ports))
			if a := o.Spec.AllocateLoadBalancerNodePorts; a != nil && !*a {
				ports = 0
				for _, p := range o.Spec.Ports {
					if p.NodePort != 0 {
						ports++
					}
				}
			}
			out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(ports, resource.DecimalSI)
			out[corev1.ResourceServicesLoadBalancers] = one
		}
	case *corev1.PersistentVolumeClaim:
		out[corev1.ResourcePersistentVolumeClaims] = one
		storage, ok := o.Spec.Resources.Requests[corev1.ResourceStorage]
		if ok {
			out[corev1.ResourceRequestsStorage] = storage.DeepCopy()
		}
		if class := pvcClass(o); class != "" {
			out[corev1.ResourceName(class+storageClassSuffix+string(corev1.ResourcePersistentVolumeClaims))] = one
			if ok {
				out[corev1.ResourceName(class+storageClassSuffix+string(corev1.ResourceRequestsStorage))] = storage.DeepCopy()
			}
		}
	default:
		if n, ok := legacyCounts[e.GroupResource.Resource]; ok && e.GroupResource.Group == "" {
			out[n] = one
		}
	}
	return out
}

func pvcClass(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return pvc.Annotations[corev1.BetaStorageClassAnnotation]
}

// chargesCompute tells whether a pod still holds its compute resources: not terminal, and not
// stuck in deletion past its grace period (a lost node must not block the namespace).
func chargesCompute(pod *corev1.Pod, now time.Time) bool {
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return false
	}
	if pod.DeletionTimestamp != nil && pod.DeletionGracePeriodSeconds != nil {
		if now.After(pod.DeletionTimestamp.Add(time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second)) {
			return false
		}
	}
	return true
}

// podUsage is the compute a live pod is charged.
func podUsage(pod *corev1.Pod) corev1.ResourceList {
	return computeUsage(podRequests(pod), podLimits(pod))
}

// computeUsage turns requests and limits into the names quota charges them under.
func computeUsage(requests, limits corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(1, resource.DecimalSI)}
	for _, r := range []struct{ plain, req, lim corev1.ResourceName }{
		{corev1.ResourceCPU, corev1.ResourceRequestsCPU, corev1.ResourceLimitsCPU},
		{corev1.ResourceMemory, corev1.ResourceRequestsMemory, corev1.ResourceLimitsMemory},
		{corev1.ResourceEphemeralStorage, corev1.ResourceRequestsEphemeralStorage, corev1.ResourceLimitsEphemeralStorage},
	} {
		if q, ok := requests[r.plain]; ok {
			out[r.plain] = q.DeepCopy()
			out[r.req] = q.DeepCopy()
		}
		if q, ok := limits[r.plain]; ok {
			out[r.lim] = q.DeepCopy()
		}
	}
	for name, q := range requests {
		s := string(name)
		switch {
		case strings.HasPrefix(s, corev1.ResourceHugePagesPrefix):
			out[name] = q.DeepCopy()
			out[corev1.ResourceName(corev1.DefaultResourceRequestsPrefix+s)] = q.DeepCopy()
		case extendedResource(name):
			out[corev1.ResourceName(corev1.DefaultResourceRequestsPrefix+s)] = q.DeepCopy()
		}
	}
	return out
}

// extendedResource tells a fully-qualified resource outside kubernetes.io (a device, say).
func extendedResource(name corev1.ResourceName) bool {
	s := string(name)
	if !strings.Contains(s, "/") || strings.HasPrefix(s, corev1.DefaultResourceRequestsPrefix) {
		return false
	}
	domain, _, _ := strings.Cut(s, "/")
	return domain != "kubernetes.io" && !strings.HasSuffix(domain, ".kubernetes.io")
}

// podRequests is the pod's effective requests: its containers' sum, at least what any init
// container needs alongside the sidecars started before it, plus overhead; pod-level requests
// take precedence.
func podRequests(pod *corev1.Pod) corev1.ResourceList {
	return podResources(pod, func(r corev1.ResourceRequirements) corev1.ResourceList { return r.Requests }, true)
}

func podLimits(pod *corev1.Pod) corev1.ResourceList {
	return podResources(pod, func(r corev1.ResourceRequirements) corev1.ResourceList { return r.Limits }, false)
}

func podResources(pod *corev1.Pod, pick func(corev1.ResourceRequirements) corev1.ResourceList, requests bool) corev1.ResourceList {
	sum := corev1.ResourceList{}
	for _, c := range pod.Spec.Containers {
		addTo(sum, pick(c.Resources))
	}
	sidecars := corev1.ResourceList{}
	inits := corev1.ResourceList{}
	for _, c := range pod.Spec.InitContainers {
		own := pick(c.Resources)
		var needs corev1.ResourceList
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addTo(sum, own)
			addTo(sidecars, own)
			needs = sidecars
		} else {
			needs = corev1.ResourceList{}
			addTo(needs, own)
			addTo(needs, sidecars)
		}
		maxTo(inits, needs)
	}
	maxTo(sum, inits)
	if pod.Spec.Resources != nil {
		for name, q := range pick(*pod.Spec.Resources) {
			if name == corev1.ResourceCPU || name == corev1.ResourceMemory || strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
				sum[name] = q.DeepCopy()
			}
		}
	}
	for name, q := range pod.Spec.Overhead {
		if v, ok := sum[name]; ok || requests {
			v.Add(q)
			sum[name] = v
		}
	}
	return sum
}

func addTo(into, l corev1.ResourceList) {
	for name, q := range l {
		v, ok := into[name]
		if !ok {
			into[name] = q.DeepCopy()
			continue
		}
		v.Add(q)
		into[name] = v
	}
}

func maxTo(into, l corev1.ResourceList) {
	for name, q := range l {
		if v, ok := into[name]; !ok || q.Cmp(v) > 0 {
			into[name] = q.DeepCopy()
		}
	}
}

// constrained are the resources that, when a quota limits them, every container of a pod must
// declare.
var constrained = sets.New[corev1.ResourceName](
	corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceRequestsCPU, corev1.ResourceRequestsMemory,
	corev1.ResourceLimitsCPU, corev1.ResourceLimitsMemory,
)

// Constraints refuses a pod whose containers leave out a resource that the quota limits, in
// upstream's words: "must specify limits.cpu for: a,b; requests.memory for: a".
func (e Evaluator) Constraints(limited []corev1.ResourceName, obj runtime.Object) error {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	required := sets.New(limited...).Intersection(constrained)
	if pod.Spec.Resources != nil {
		// What the pod declares as a whole needs no declaration by each container.
		for name := range computeUsage(pod.Spec.Resources.Requests, pod.Spec.Resources.Limits) {
			required.Delete(name)
		}
	}
	missing := map[corev1.ResourceName]sets.Set[string]{}
	check := func(c corev1.Container) {
		has := sets.KeySet(computeUsage(c.Resources.Requests, c.Resources.Limits))
		for _, name := range sets.List(required.Difference(has)) {
			if missing[name] == nil {
				missing[name] = sets.New[string]()
			}
			missing[name].Insert(c.Name)
		}
	}
	for _, c := range pod.Spec.Containers {
		check(c)
	}
	for _, c := range pod.Spec.InitContainers {
		check(c)
	}
	if len(missing) == 0 {
		return nil
	}
	names := sets.List(sets.KeySet(missing))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s for: %s", n, strings.Join(sets.List(missing[n]), ",")))
	}
	return fmt.Errorf("must specify %s", strings.Join(parts, "; "))
}

// ScopeSelectors are a quota's scopes and scope selector as one list of requirements.
func ScopeSelectors(q *corev1.ResourceQuota) []corev1.ScopedResourceSelectorRequirement {
	var out []corev1.ScopedResourceSelectorRequirement
	for _, s := range q.Spec.Scopes {
		out = append(out, corev1.ScopedResourceSelectorRequirement{ScopeName: s, Operator: corev1.ScopeSelectorOpExists})
	}
	if q.Spec.ScopeSelector != nil {
		out = append(out, q.Spec.ScopeSelector.MatchExpressions...)
	}
	return out
}

// MatchesScopes tells whether obj falls under every scope requirement. Only pods (and
// PersistentVolumeClaims, by VolumeAttributesClass) have scopes; other objects fall under no
// scoped quota.
func (e Evaluator) MatchesScopes(obj runtime.Object, reqs []corev1.ScopedResourceSelectorRequirement) (bool, error) {
	for _, r := range reqs {
		ok, err := matchesScope(obj, r)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func matchesScope(obj runtime.Object, r corev1.ScopedResourceSelectorRequirement) (bool, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		switch r.ScopeName {
		case corev1.ResourceQuotaScopeTerminating:
			return o.Spec.ActiveDeadlineSeconds != nil && *o.Spec.ActiveDeadlineSeconds >= 0, nil
		case corev1.ResourceQuotaScopeNotTerminating:
			return o.Spec.ActiveDeadlineSeconds == nil, nil
		case corev1.ResourceQuotaScopeBestEffort:
			return bestEffort(o), nil
		case corev1.ResourceQuotaScopeNotBestEffort:
			return !bestEffort(o), nil
		case corev1.ResourceQuotaScopePriorityClass:
			set := labels.Set{}
			if o.Spec.PriorityClassName != "" {
				set[string(corev1.ResourceQuotaScopePriorityClass)] = o.Spec.PriorityClassName
			}
			return selectorMatches(r, set)
		case corev1.ResourceQuotaScopeCrossNamespacePodAffinity:
			return crossNamespaceAffinity(o), nil
		}
	case *corev1.PersistentVolumeClaim:
		if r.ScopeName == corev1.ResourceQuotaScopeVolumeAttributesClass {
			set := labels.Set{}
			if c := o.Spec.VolumeAttributesClassName; c != nil && *c != "" {
				set[string(corev1.ResourceQuotaScopeVolumeAttributesClass)] = *c
			}
			return selectorMatches(r, set)
		}
	}
	return false, nil
}

func selectorMatches(r corev1.ScopedResourceSelectorRequirement, set labels.Set) (bool, error) {
	var op selection.Operator
	switch r.Operator {
	case corev1.ScopeSelectorOpIn:
		op = selection.In
	case corev1.ScopeSelectorOpNotIn:
		op = selection.NotIn
	case corev1.ScopeSelectorOpExists:
		op = selection.Exists
	case corev1.ScopeSelectorOpDoesNotExist:
		op = selection.DoesNotExist
	default:
		return false, fmt.Errorf("%q is not a valid scope selector operator", r.Operator)
	}
	req, err := labels.NewRequirement(string(r.ScopeName), op, r.Values)
	if err != nil {
		return false, err
	}
	return labels.NewSelector().Add(*req).Matches(set), nil
}

// bestEffort tells a pod that requests and limits no cpu or memory at all.
func bestEffort(pod *corev1.Pod) bool {
	declares := func(r corev1.ResourceRequirements) bool {
		for _, l := range []corev1.ResourceList{r.Requests, r.Limits} {
			for name := range l {
				if name == corev1.ResourceCPU || name == corev1.ResourceMemory {
					return true
				}
			}
		}
		return false
	}
	if pod.Spec.Resources != nil && declares(*pod.Spec.Resources) {
		return false
	}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if declares(c.Resources) {
			return false
		}
	}
	return true
}

func crossNamespaceAffinity(pod *corev1.Pod) bool {
	a := pod.Spec.Affinity
	if a == nil {
		return false
	}
	cross := func(t corev1.PodAffinityTerm) bool { return len(t.Namespaces) > 0 || t.NamespaceSelector != nil }
	check := func(req []corev1.PodAffinityTerm, pref []corev1.WeightedPodAffinityTerm) bool {
		for _, t := range req {
			if cross(t) {
				return true
			}
		}
		for _, t := range pref {
			if cross(t.PodAffinityTerm) {
				return true
			}
		}
		return false
	}
	if p := a.PodAffinity; p != nil && check(p.RequiredDuringSchedulingIgnoredDuringExecution, p.PreferredDuringSchedulingIgnoredDuringExecution) {
		return true
	}
	if p := a.PodAntiAffinity; p != nil && check(p.RequiredDuringSchedulingIgnoredDuringExecution, p.PreferredDuringSchedulingIgnoredDuringExecution) {
		return true
	}
	return false
}

// Matches tells whether obj is charged to the quota: the quota limits something the object
// uses and its scopes take the object in.
func (e Evaluator) Matches(q *corev1.ResourceQuota, obj runtime.Object) (bool, error) {
	if len(e.Matching(Names(q.Status.Hard))) == 0 {
		return false, nil
	}
	return e.MatchesScopes(obj, ScopeSelectors(q))
}

// Names are the resource names of a list, sorted.
func Names(l corev1.ResourceList) []corev1.ResourceName {
	out := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Add is a + b, keyed by resource name.
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	out := corev1.ResourceList{}
	for n, q := range a {
		v := q.DeepCopy()
		if o, ok := b[n]; ok {
			v.Add(o)
		}
		out[n] = v
	}
	for n, q := range b {
		if _, ok := out[n]; !ok {
			out[n] = q.DeepCopy()
		}
	}
	return out
}

// Mask keeps the entries of l named in names.
func Mask(l corev1.ResourceList, names []corev1.ResourceName) corev1.ResourceList {
	out := corev1.ResourceList{}
	for _, n := range names {
		if q, ok := l[n]; ok {
			out[n] = q.DeepCopy()
		}
	}
	return out
}

// Equal tells whether two lists hold the same quantities.
func Equal(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for n, q := range a {
		o, ok := b[n]
		if !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}

// exceeds names the entries of a that are above their limit in b.
func exceeds(a, b corev1.ResourceList) []corev1.ResourceName {
	var out []corev1.ResourceName
	for _, n := range Names(a) {
		q := a[n]
		if limit, ok := b[n]; ok && q.Cmp(limit) > 0 {
			out = append(out, n)
		}
	}
	return out
}

// prettyPrint is upstream's rendering of a list in errors: name=quantity, sorted, comma-joined.
func prettyPrint(l corev1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for _, n := range Names(l) {
		q := l[n]
		parts = append(parts, fmt.Sprintf("%s=%s", n, q.String()))
	}
	return strings.Join(parts, ",")
}

func prettyPrintNames(names []corev1.ResourceName) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}
