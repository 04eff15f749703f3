package endpointslice

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Hints follow the Service's spec.trafficDistribution, as upstream's: with PreferClose (or its
// new name PreferSameZone) every ready endpoint is hinted for its own zone, with PreferSameNode
// also for its own node. Without it, slices being written anyway lose their hints. The
// service.kubernetes.io/topology-mode annotation's heuristic (hints in proportion to each zone's
// CPUs) is not implemented: a Service with it gets no hints.

func closeDistribution(svc *corev1.Service) (wanted, nodeHints bool) {
	if topologyModeAuto(svc) || svc.Spec.TrafficDistribution == nil {
		return false, false
	}
	switch *svc.Spec.TrafficDistribution {
	case corev1.ServiceTrafficDistributionPreferClose, corev1.ServiceTrafficDistributionPreferSameZone:
		return true, false
	case corev1.ServiceTrafficDistributionPreferSameNode:
		return true, true
	}
	return false, false
}

// topologyModeAuto tells whether the Service asks for topology-aware hints by annotation (the
// deprecated annotation taking precedence).
func topologyModeAuto(svc *corev1.Service) bool {
	v, ok := svc.Annotations[corev1.DeprecatedAnnotationTopologyAwareHints]
	if !ok {
		v, ok = svc.Annotations[corev1.AnnotationTopologyMode]
	}
	return ok && (v == "Auto" || v == "auto")
}

func ready(e *discoveryv1.Endpoint) bool { return e.Conditions.Ready != nil && *e.Conditions.Ready }

// wantHints are the hints a ready endpoint should carry.
func wantHints(e *discoveryv1.Endpoint, nodeHints bool) *discoveryv1.EndpointHints {
	var h discoveryv1.EndpointHints
	if e.Zone != nil {
		h.ForZones = []discoveryv1.ForZone{{Name: *e.Zone}}
	}
	if nodeHints && e.NodeName != nil {
		h.ForNodes = []discoveryv1.ForNode{{Name: *e.NodeName}}
	}
	if h.ForZones == nil && h.ForNodes == nil {
		return nil
	}
	return &h
}

// hintsWrong tells whether a slice's ready endpoints lack the hints they should have, or have
// hints they should not.
func hintsWrong(s *discoveryv1.EndpointSlice, nodeHints bool) bool {
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		if !ready(e) {
			continue
		}
		want := wantHints(e, nodeHints)
		var zones []discoveryv1.ForZone
		var nodes []discoveryv1.ForNode
		if e.Hints != nil {
			zones, nodes = e.Hints.ForZones, e.Hints.ForNodes
		}
		var wantZones []discoveryv1.ForZone
		var wantNodes []discoveryv1.ForNode
		if want != nil {
			wantZones, wantNodes = want.ForZones, want.ForNodes
		}
		if !slices.Equal(zones, wantZones) || !slices.Equal(nodes, wantNodes) {
			return true
		}
	}
	return false
}

// setHints gives the ready endpoints of s the hints they should carry.
func setHints(s *discoveryv1.EndpointSlice, nodeHints bool) {
	for i := range s.Endpoints {
		if ready(&s.Endpoints[i]) {
			s.Endpoints[i].Hints = wantHints(&s.Endpoints[i], nodeHints)
		}
	}
}

func clearHints(s *discoveryv1.EndpointSlice) {
	for i := range s.Endpoints {
		s.Endpoints[i].Hints = nil
	}
}

// planHints completes the changes of one address type with the hints svc wants; unchanged
// slices whose hints are wrong are updated too.
func planHints(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, out *changes) {
	wanted, nodeHints := closeDistribution(svc)
	if !wanted {
		for _, s := range append(slices.Clone(out.create), out.update...) {
			clearHints(s)
		}
		return
	}
	touched := map[string]bool{}
	for _, s := range append(slices.Clone(out.update), out.delete...) {
		touched[s.Name] = true
	}
	for _, s := range existing {
		if !touched[s.Name] && hintsWrong(s, nodeHints) {
			out.update = append(out.update, s.DeepCopy())
		}
	}
	for _, s := range append(slices.Clone(out.create), out.update...) {
		setHints(s, nodeHints)
	}
}
