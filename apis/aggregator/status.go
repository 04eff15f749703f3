package aggregator

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// Status check timing: an APIService is checked when it changes, again every recheckAvailable
// while available, and every recheckUnavailable while not (upstream requeues failures with
// backoff and resyncs every 30 s).
const (
	statusTick         = time.Second
	recheckAvailable   = 10 * time.Second
	recheckUnavailable = 2 * time.Second
)

// RunStatus keeps the Available condition of every APIService until ctx is done, writing through
// client (a REST client of any group: only absolute paths are used).
func (a *Aggregator) RunStatus(ctx context.Context, client rest.Interface) {
	t := time.NewTicker(statusTick)
	defer t.Stop()
	for {
		a.syncAll(ctx, client)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *Aggregator) syncAll(ctx context.Context, client rest.Interface) {
	now := time.Now()
	seen := map[string]bool{}
	for _, svc := range a.APIServices() {
		seen[svc.Name] = true
		fp := a.fingerprint(svc)
		a.mu.Lock()
		rec, ok := a.checked[svc.Name]
		a.mu.Unlock()
		due := !ok || rec.resourceVersion != svc.ResourceVersion || rec.fingerprint != fp ||
			(rec.available && now.Sub(rec.at) >= recheckAvailable) || (!rec.available && now.Sub(rec.at) >= recheckUnavailable)
		if !due {
			continue
		}
		cond, list := a.check(ctx, svc)
		var fresh *discoveredVersion
		if list != nil {
			fresh = &discoveredVersion{fresh: true}
			if v := a.discoverAggregated(ctx, svc); v != nil {
				fresh.resources = v.Resources
			} else {
				fresh.resources = toDiscovery(list)
			}
		}
		a.mu.Lock()
		switch {
		case fresh != nil:
			a.discovered[svc.Name] = fresh
		case a.discovered[svc.Name] != nil && cond.Status != apiregistrationv1.ConditionTrue:
			stale := *a.discovered[svc.Name]
			stale.fresh = false
			a.discovered[svc.Name] = &stale
		}
		a.mu.Unlock()
		rv, err := a.writeCondition(ctx, client, svc, cond)
		if err != nil {
			a.log.Debug("aggregator: writing APIService status", "apiservice", svc.Name, "err", err)
			continue
		}
		a.mu.Lock()
		a.checked[svc.Name] = checkRecord{resourceVersion: rv, fingerprint: fp, at: now, available: cond.Status == apiregistrationv1.ConditionTrue}
		a.mu.Unlock()
	}
	a.mu.Lock()
	for name := range a.checked {
		if !seen[name] {
			delete(a.checked, name)
			delete(a.discovered, name)
			if e := a.transports[name]; e != nil {
				e.rt.CloseIdleConnections()
				delete(a.transports, name)
			}
		}
	}
	a.mu.Unlock()
}

// fingerprint names the versions of the Service and EndpointSlices behind svc, so that a change
// to them is checked at once, as upstream's controller reacts to their events.
func (a *Aggregator) fingerprint(svc *apiregistrationv1.APIService) string {
	ref := svc.Spec.Service
	if ref == nil {
		return ""
	}
	var b strings.Builder
	if s := a.service(ref.Namespace, ref.Name); s != nil {
		b.WriteString(s.ResourceVersion)
	}
	for _, es := range a.endpointSlices(ref.Namespace, ref.Name) {
		b.WriteString("/" + es.Name + "@" + es.ResourceVersion)
	}
	return b.String()
}

// check computes the Available condition of svc, with upstream's reasons and messages, and the
// backend's resource list when it passed.
func (a *Aggregator) check(ctx context.Context, svc *apiregistrationv1.APIService) (apiregistrationv1.APIServiceCondition, *metav1.APIResourceList) {
	cond := apiregistrationv1.APIServiceCondition{Type: apiregistrationv1.Available, Status: apiregistrationv1.ConditionTrue}
	ref := svc.Spec.Service
	if ref == nil {
		cond.Reason, cond.Message = "Local", "Local APIServices are always available"
		return cond, nil
	}
	fail := func(reason, msg string) (apiregistrationv1.APIServiceCondition, *metav1.APIResourceList) {
		cond.Status, cond.Reason, cond.Message = apiregistrationv1.ConditionFalse, reason, msg
		return cond, nil
	}
	s := a.service(ref.Namespace, ref.Name)
	if s == nil {
		return fail("ServiceNotFound", fmt.Sprintf("service/%s in %q is not present", ref.Name, ref.Namespace))
	}
	if s.Spec.Type == corev1.ServiceTypeClusterIP || s.Spec.Type == "" {
		port := servicePort(ref)
		portName, found := "", false
		for _, p := range s.Spec.Ports {
			if p.Port == port {
				portName, found = p.Name, true
				break
			}
		}
		if !found {
			return fail("ServicePortError", fmt.Sprintf("service/%s in %q is not listening on port %d", ref.Name, ref.Namespace, port))
		}
		slices := a.endpointSlices(ref.Namespace, ref.Name)
		if len(slices) == 0 {
			return fail("EndpointsNotFound", fmt.Sprintf("cannot find endpointslices for service/%s in %q", ref.Name, ref.Namespace))
		}
		if !hasReadyEndpoint(portName, slices) {
			return fail("MissingEndpoints", fmt.Sprintf("endpointslices for service/%s in %q have no addresses with port name %q", ref.Name, ref.Namespace, portName))
		}
	}
	// Upstream tries up to five times and passes on any success.
	var lastErr error
	for range 5 {
		list, err := a.discover(ctx, svc)
		if err == nil {
			cond.Reason, cond.Message = "Passed", "all checks passed"
			return cond, list
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return fail("FailedDiscoveryCheck", lastErr.Error())
}

func hasReadyEndpoint(portName string, slices []*discoveryv1.EndpointSlice) bool {
	for _, es := range slices {
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			for _, p := range es.Ports {
				if p.Name != nil && *p.Name == portName {
					return true
				}
			}
		}
	}
	return false
}

// writeCondition sets cond on svc's status when it differs, keeping the transition time when the
// status stays, and returns the resource version the object has afterwards.
func (a *Aggregator) writeCondition(ctx context.Context, client rest.Interface, svc *apiregistrationv1.APIService, cond apiregistrationv1.APIServiceCondition) (string, error) {
	updated := svc.DeepCopy()
	replaced := false
	for i, c := range updated.Status.Conditions {
		if c.Type != cond.Type {
			continue
		}
		replaced = true
		if c.Status == cond.Status && c.Reason == cond.Reason && c.Message == cond.Message {
			return svc.ResourceVersion, nil
		}
		cond.LastTransitionTime = c.LastTransitionTime
		if c.Status != cond.Status {
			cond.LastTransitionTime = metav1.Now()
		}
		updated.Status.Conditions[i] = cond
	}
	if !replaced {
		cond.LastTransitionTime = metav1.Now()
		updated.Status.Conditions = append(updated.Status.Conditions, cond)
	}
	updated.APIVersion, updated.Kind = "apiregistration.k8s.io/v1", "APIService"
	body, err := json.Marshal(updated)
	if err != nil {
		return "", err
	}
	raw, err := client.Put().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices", svc.Name, "status").
		SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Raw()
	if err != nil {
		return "", err
	}
	var out metav1.PartialObjectMetadata
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", err
	}
	return out.ResourceVersion, nil
}
