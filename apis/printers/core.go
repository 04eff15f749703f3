package printers

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const (
	// nodeRoleLabelPrefix marks a node role as node-role.kubernetes.io/<role>.
	nodeRoleLabelPrefix = "node-role.kubernetes.io/"
	// nodeRoleLabel marks a node role as kubernetes.io/role=<role>.
	nodeRoleLabel = "kubernetes.io/role"
)

func registerCore(s *Set) {
	core := func(kind string) schema.GroupKind { return schema.GroupKind{Kind: kind} }

	s.add(core("Pod"), podPrinter())

	s.add(core("PodTemplate"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Containers", "string", containersDescription),
		col("Images", "string", imagesDescription),
		col("Pod Labels", "string", "The labels for the pod template."),
	}, func(o *corev1.PodTemplate, _ time.Time) []interface{} {
		names, images := containerCells(o.Template.Spec.Containers)
		return []interface{}{o.Name, names, images, labels.FormatLabels(o.Template.Labels)}
	}))

	s.add(core("ReplicationController"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Desired", "integer", corev1.ReplicationControllerSpec{}.SwaggerDoc()["replicas"]),
		col("Current", "integer", corev1.ReplicationControllerStatus{}.SwaggerDoc()["replicas"]),
		col("Ready", "integer", corev1.ReplicationControllerStatus{}.SwaggerDoc()["readyReplicas"]),
		ageColumn(),
		wide("Containers", "string", containersDescription),
		wide("Images", "string", imagesDescription),
		wide("Selector", "string", corev1.ReplicationControllerSpec{}.SwaggerDoc()["selector"]),
	}, func(o *corev1.ReplicationController, now time.Time) []interface{} {
		var containers []corev1.Container
		if o.Spec.Template != nil {
			containers = o.Spec.Template.Spec.Containers
		}
		names, images := containerCells(containers)
		return []interface{}{o.Name, int64(replicas(o.Spec.Replicas)), int64(o.Status.Replicas), int64(o.Status.ReadyReplicas),
			age(o, now), names, images, labels.FormatLabels(o.Spec.Selector)}
	}))

	svc := corev1.ServiceSpec{}.SwaggerDoc()
	s.add(core("Service"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Type", "string", svc["type"]),
		col("Cluster-IP", "string", svc["clusterIP"]),
		col("External-IP", "string", svc["externalIPs"]),
		col("Port(s)", "string", svc["ports"]),
		ageColumn(),
		wide("Selector", "string", svc["selector"]),
	}, serviceCells))

	s.add(core("Endpoints"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Endpoints", "string", corev1.Endpoints{}.SwaggerDoc()["subsets"]),
		ageColumn(),
	}, func(o *corev1.Endpoints, now time.Time) []interface{} {
		return []interface{}{o.Name, formatEndpoints(o), age(o, now)}
	}))

	info := corev1.NodeSystemInfo{}.SwaggerDoc()
	addresses := corev1.NodeStatus{}.SwaggerDoc()["addresses"]
	s.add(core("Node"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Status", "string", "The status of the node"),
		col("Roles", "string", "The roles of the node"),
		ageColumn(),
		col("Version", "string", info["kubeletVersion"]),
		wide("Internal-IP", "string", addresses),
		wide("External-IP", "string", addresses),
		wide("OS-Image", "string", info["osImage"]),
		wide("Kernel-Version", "string", info["kernelVersion"]),
		wide("Container-Runtime", "string", info["containerRuntimeVersion"]),
	}, nodeCells))

	eventPrinter := eventPrinter()
	s.add(core("Event"), eventPrinter)
	s.add(schema.GroupKind{Group: eventsv1.GroupName, Kind: "Event"}, eventPrinter)

	s.add(core("Namespace"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Status", "string", "The status of the namespace"),
		ageColumn(),
	}, func(o *corev1.Namespace, now time.Time) []interface{} {
		return []interface{}{o.Name, string(o.Status.Phase), age(o, now)}
	}))

	s.add(core("Secret"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Type", "string", corev1.Secret{}.SwaggerDoc()["type"]),
		col("Data", "string", corev1.Secret{}.SwaggerDoc()["data"]),
		ageColumn(),
	}, func(o *corev1.Secret, now time.Time) []interface{} {
		// stringData is write-only: the stored object has it merged into data.
		n := len(o.Data)
		for k := range o.StringData {
			if _, ok := o.Data[k]; !ok {
				n++
			}
		}
		return []interface{}{o.Name, string(o.Type), int64(n), age(o, now)}
	}))

	// Upstream v1.37 dropped the Secrets column.
	s.add(core("ServiceAccount"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		ageColumn(),
	}, func(o *corev1.ServiceAccount, now time.Time) []interface{} {
		return []interface{}{o.Name, age(o, now)}
	}))

	pvSpec, pvStatus := corev1.PersistentVolumeSpec{}.SwaggerDoc(), corev1.PersistentVolumeStatus{}.SwaggerDoc()
	s.add(core("PersistentVolume"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Capacity", "string", pvSpec["capacity"]),
		col("Access Modes", "string", pvSpec["accessModes"]),
		col("Reclaim Policy", "string", pvSpec["persistentVolumeReclaimPolicy"]),
		col("Status", "string", pvStatus["phase"]),
		col("Claim", "string", pvSpec["claimRef"]),
		col("StorageClass", "string", "StorageClass of the pv"),
		col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
		col("Reason", "string", pvStatus["reason"]),
		ageColumn(),
		wide("VolumeMode", "string", pvSpec["volumeMode"]),
	}, persistentVolumeCells))

	pvcSpec, pvcStatus := corev1.PersistentVolumeClaimSpec{}.SwaggerDoc(), corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()
	s.add(core("PersistentVolumeClaim"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Status", "string", pvcStatus["phase"]),
		col("Volume", "string", pvcSpec["volumeName"]),
		col("Capacity", "string", pvcStatus["capacity"]),
		col("Access Modes", "string", pvcStatus["accessModes"]),
		col("StorageClass", "string", "StorageClass of the pvc"),
		col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
		ageColumn(),
		wide("VolumeMode", "string", pvcSpec["volumeMode"]),
	}, persistentVolumeClaimCells))

	s.add(core("ConfigMap"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Data", "string", corev1.ConfigMap{}.SwaggerDoc()["data"]),
		ageColumn(),
	}, func(o *corev1.ConfigMap, now time.Time) []interface{} {
		return []interface{}{o.Name, int64(len(o.Data) + len(o.BinaryData)), age(o, now)}
	}))

	s.add(core("ResourceQuota"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
		col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
		ageColumn(),
	}, resourceQuotaCells))

	s.add(core("ComponentStatus"), typed([]metav1.TableColumnDefinition{
		nameColumn(),
		col("Status", "string", "Status of the component conditions"),
		col("Message", "string", "Message of the component conditions"),
		col("Error", "string", "Error of the component conditions"),
	}, func(o *corev1.ComponentStatus, _ time.Time) []interface{} {
		status, message, errText := "Unknown", "", ""
		for _, c := range o.Conditions {
			if c.Type == corev1.ComponentHealthy {
				if c.Status == corev1.ConditionTrue {
					status = "Healthy"
				} else {
					status = "Unhealthy"
				}
				message, errText = c.Message, c.Error
				break
			}
		}
		return []interface{}{o.Name, status, message, errText}
	}))
}

// replicas reads a defaulted replica count; an unset one defaults to 1.
func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

func serviceCells(o *corev1.Service, now time.Time) []interface{} {
	clusterIP := "<none>"
	if len(o.Spec.ClusterIPs) > 0 {
		clusterIP = o.Spec.ClusterIPs[0]
	}
	ports := servicePorts(o.Spec.Ports)
	if ports == "" {
		ports = "<none>"
	}
	return []interface{}{o.Name, string(o.Spec.Type), clusterIP, serviceExternalIP(o), ports, age(o, now),
		labels.FormatLabels(o.Spec.Selector)}
}

// loadBalancerAddresses lists the sorted, distinct IPs (or else hostnames) of a load balancer.
func loadBalancerAddresses(ips, hostnames []string) string {
	set := map[string]struct{}{}
	for i := range ips {
		if ips[i] != "" {
			set[ips[i]] = struct{}{}
		} else if hostnames[i] != "" {
			set[hostnames[i]] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func serviceExternalIP(o *corev1.Service) string {
	switch o.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(o.Spec.ExternalIPs) > 0 {
			return strings.Join(o.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		ips := make([]string, len(o.Status.LoadBalancer.Ingress))
		hosts := make([]string, len(o.Status.LoadBalancer.Ingress))
		for i, in := range o.Status.LoadBalancer.Ingress {
			ips[i], hosts[i] = in.IP, in.Hostname
		}
		lb := loadBalancerAddresses(ips, hosts)
		if len(o.Spec.ExternalIPs) > 0 {
			var all []string
			if lb != "" {
				all = append(all, strings.Split(lb, ",")...)
			}
			return strings.Join(append(all, o.Spec.ExternalIPs...), ",")
		}
		if lb != "" {
			return lb
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return o.Spec.ExternalName
	}
	return "<unknown>"
}

func servicePorts(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, p := range ports {
		if p.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			pieces[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

// formatEndpoints lists up to three ip:port pairs of all subsets.
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	var list []string
	more := false
	count := 0
	add := func(s string) {
		if len(list) == max {
			more = true
			return
		}
		list = append(list, s)
	}
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			// Headless services may have no ports.
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if more {
					break
				}
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			count += len(ss.Addresses)
			for _, a := range ss.Addresses {
				if more {
					break
				}
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if more {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}

func nodeCells(o *corev1.Node, now time.Time) []interface{} {
	var status []string
	for _, c := range o.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		status = status[:0]
		if c.Status == corev1.ConditionTrue {
			status = append(status, string(c.Type))
		} else {
			status = append(status, "Not"+string(c.Type))
		}
	}
	if len(status) == 0 {
		status = append(status, "Unknown")
	}
	if o.Spec.Unschedulable {
		status = append(status, "SchedulingDisabled")
	}

	roleSet := map[string]struct{}{}
	for k, v := range o.Labels {
		switch {
		case strings.HasPrefix(k, nodeRoleLabelPrefix):
			if r := strings.TrimPrefix(k, nodeRoleLabelPrefix); r != "" {
				roleSet[r] = struct{}{}
			}
		case k == nodeRoleLabel && v != "":
			roleSet[v] = struct{}{}
		}
	}
	roles := make([]string, 0, len(roleSet))
	for r := range roleSet {
		roles = append(roles, r)
	}
	sort.Strings(roles)

	address := func(t corev1.NodeAddressType) string {
		for _, a := range o.Status.Addresses {
			if a.Type == t {
				return a.Address
			}
		}
		return "<none>"
	}
	unknown := func(s string) string {
		if s == "" {
			return "<unknown>"
		}
		return s
	}
	ni := o.Status.NodeInfo
	return []interface{}{o.Name, strings.Join(status, ","), orNone(strings.Join(roles, ",")), age(o, now), ni.KubeletVersion,
		address(corev1.NodeInternalIP), address(corev1.NodeExternalIP),
		unknown(ni.OSImage), unknown(ni.KernelVersion), unknown(ni.ContainerRuntimeVersion)}
}

// accessModes is the short form of access modes, always in the order RWO,ROX,RWX,RWOP.
func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	has := map[corev1.PersistentVolumeAccessMode]bool{}
	for _, m := range modes {
		has[m] = true
	}
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{
		{corev1.ReadWriteOnce, "RWO"},
		{corev1.ReadOnlyMany, "ROX"},
		{corev1.ReadWriteMany, "RWX"},
		{corev1.ReadWriteOncePod, "RWOP"},
	} {
		if has[m.mode] {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}

func persistentVolumeCells(o *corev1.PersistentVolume, now time.Time) []interface{} {
	claim := ""
	if o.Spec.ClaimRef != nil {
		claim = o.Spec.ClaimRef.Namespace + "/" + o.Spec.ClaimRef.Name
	}
	size := o.Spec.Capacity[corev1.ResourceStorage]
	phase := string(o.Status.Phase)
	if o.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	class := o.Spec.StorageClassName
	if c, ok := o.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		class = c
	}
	volumeMode := "<unset>"
	if o.Spec.VolumeMode != nil {
		volumeMode = string(*o.Spec.VolumeMode)
	}
	return []interface{}{o.Name, size.String(), accessModes(o.Spec.AccessModes), string(o.Spec.PersistentVolumeReclaimPolicy),
		phase, claim, class, deref(o.Spec.VolumeAttributesClassName, "<unset>"), o.Status.Reason, age(o, now), volumeMode}
}

func persistentVolumeClaimCells(o *corev1.PersistentVolumeClaim, now time.Time) []interface{} {
	phase := string(o.Status.Phase)
	if o.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	capacity, modes := "", ""
	if o.Spec.VolumeName != "" {
		modes = accessModes(o.Status.AccessModes)
		q := o.Status.Capacity[corev1.ResourceStorage]
		capacity = q.String()
	}
	class := ""
	if c, ok := o.Annotations[corev1.BetaStorageClassAnnotation]; ok {
		class = c
	} else if o.Spec.StorageClassName != nil {
		class = *o.Spec.StorageClassName
	}
	volumeMode := "<unset>"
	if o.Spec.VolumeMode != nil {
		volumeMode = string(*o.Spec.VolumeMode)
	}
	return []interface{}{o.Name, phase, o.Spec.VolumeName, capacity, modes, class,
		deref(o.Spec.VolumeAttributesClassName, "<unset>"), age(o, now), volumeMode}
}

func resourceQuotaCells(o *corev1.ResourceQuota, now time.Time) []interface{} {
	var requests, limits []string
	for _, r := range sortedKeys(o.Status.Hard) {
		used, hard := o.Status.Used[r], o.Status.Hard[r]
		cell := fmt.Sprintf("%s: %s/%s", r, used.String(), hard.String())
		if pieces := strings.Split(string(r), "."); len(pieces) > 1 && pieces[0] == "limits" {
			limits = append(limits, cell)
		} else {
			requests = append(requests, cell)
		}
	}
	return []interface{}{o.Name, strings.Join(requests, ", "), strings.Join(limits, ", "), age(o, now)}
}

// eventPrinter prints core/v1 Events and events.k8s.io/v1 Events alike.
func eventPrinter() *Printer {
	doc := corev1.Event{}.SwaggerDoc()
	columns := []metav1.TableColumnDefinition{
		col("Last Seen", "string", doc["lastTimestamp"]),
		col("Type", "string", doc["type"]),
		col("Reason", "string", doc["reason"]),
		col("Object", "string", doc["involvedObject"]),
		wide("Subobject", "string", corev1.ObjectReference{}.SwaggerDoc()["fieldPath"]),
		wide("Source", "string", doc["source"]),
		col("Message", "string", doc["message"]),
		wide("First Seen", "string", doc["firstTimestamp"]),
		wide("Count", "string", doc["count"]),
		{Name: "Name", Type: "string", Format: "name", Priority: 1, Description: metaDoc["name"]},
	}
	return &Printer{
		Columns: columns,
		Cells: func(obj runtime.Object, now time.Time) []interface{} {
			switch o := obj.(type) {
			case *corev1.Event:
				return eventCells(o, now)
			case *eventsv1.Event:
				return eventCells(coreEvent(o), now)
			}
			return fallbackCells(columns, obj)
		},
	}
}

// coreEvent maps an events.k8s.io/v1 Event onto the core/v1 fields the printer reads.
func coreEvent(e *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		ObjectMeta:          e.ObjectMeta,
		InvolvedObject:      e.Regarding,
		Reason:              e.Reason,
		Message:             e.Note,
		Source:              e.DeprecatedSource,
		FirstTimestamp:      e.DeprecatedFirstTimestamp,
		LastTimestamp:       e.DeprecatedLastTimestamp,
		Count:               e.DeprecatedCount,
		Type:                e.Type,
		EventTime:           e.EventTime,
		Action:              e.Action,
		Related:             e.Related,
		ReportingController: e.ReportingController,
		ReportingInstance:   e.ReportingInstance,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out
}

func eventCells(o *corev1.Event, now time.Time) []interface{} {
	first := since(o.FirstTimestamp, now)
	if o.FirstTimestamp.IsZero() {
		first = sinceMicro(o.EventTime, now)
	}
	last := since(o.LastTimestamp, now)
	if o.LastTimestamp.IsZero() {
		last = first
	}
	count := o.Count
	if o.Series != nil {
		last = sinceMicro(o.Series.LastObservedTime, now)
		count = o.Series.Count
	} else if count == 0 {
		// Singleton events of the new API carry no count.
		count = 1
	}
	target := strings.ToLower(o.InvolvedObject.Kind)
	if o.InvolvedObject.Name != "" {
		target += "/" + o.InvolvedObject.Name
	}
	component := o.Source.Component
	if component == "" {
		component = o.ReportingController
	}
	instance := o.Source.Host
	if instance == "" {
		instance = o.ReportingInstance
	}
	source := component
	if instance != "" {
		source = component + ", " + instance
	}
	return []interface{}{last, o.Type, o.Reason, target, o.InvolvedObject.FieldPath, source,
		strings.TrimSpace(o.Message), first, int64(count), o.Name}
}
