// Package aggregator is the API server's aggregation layer, as upstream's kube-aggregator: requests
// for a group/version whose APIService names a Service are proxied to that Service's endpoints,
// with the caller's identity in front-proxy headers; a status loop sets each APIService's
// Available condition; and the aggregated groups' discovery documents are fetched from their
// backends for /apis.
package aggregator

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keelson/keelson/apis/authn"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// Cache is what the aggregator reads objects from: the API server's own caches.
type Cache interface {
	Cached(gr schema.GroupResource) []runtime.Object
	CachedIn(gr schema.GroupResource, namespace string) []runtime.Object
	CachedObject(gr schema.GroupResource, namespace, name string) runtime.Object
}

var (
	apiServicesGR    = schema.GroupResource{Group: "apiregistration.k8s.io", Resource: "apiservices"}
	servicesGR       = schema.GroupResource{Resource: "services"}
	endpointSlicesGR = schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}
)

// Aggregator proxies aggregated group/versions and keeps their status and discovery.
type Aggregator struct {
	cache Cache
	// proxyCert is the front-proxy client certificate presented to backends.
	proxyCert tls.Certificate
	log       *slog.Logger

	mu         sync.Mutex                    // guards transports, discovered, checked
	transports map[string]*transportEntry    // by APIService name
	discovered map[string]*discoveredVersion // by APIService name
	checked    map[string]checkRecord
}

type transportEntry struct {
	key string // what the transport was built from
	rt  *http.Transport
}

// discoveredVersion is what a backend last served for its group/version; stale when the last
// check failed, as upstream keeps the last resources and marks them stale.
type discoveredVersion struct {
	resources []apidiscoveryv2.APIResourceDiscovery
	fresh     bool
}

type checkRecord struct {
	resourceVersion string
	fingerprint     string
	at              time.Time
	available       bool
}

// New returns an aggregator reading from cache and authenticating to backends with proxyCert.
func New(cache Cache, proxyCert tls.Certificate, log *slog.Logger) *Aggregator {
	return &Aggregator{cache: cache, proxyCert: proxyCert, log: log,
		transports: map[string]*transportEntry{}, discovered: map[string]*discoveredVersion{}, checked: map[string]checkRecord{}}
}

// APIServices returns the cached APIServices, sorted by name.
func (a *Aggregator) APIServices() []*apiregistrationv1.APIService {
	var out []*apiregistrationv1.APIService
	for _, o := range a.cache.Cached(apiServicesGR) {
		if s, ok := o.(*apiregistrationv1.APIService); ok {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// remote returns the APIService of group/version when it is served by a Service. An APIService
// is named <version>.<group>, so this is one cache lookup.
func (a *Aggregator) remote(group, version string) *apiregistrationv1.APIService {
	s, _ := a.cache.CachedObject(apiServicesGR, "", version+"."+group).(*apiregistrationv1.APIService)
	if s == nil || s.Spec.Service == nil || s.Spec.Group != group || s.Spec.Version != version {
		return nil
	}
	return s
}

// Serves reports whether group/version is proxied to a backend.
func (a *Aggregator) Serves(group, version string) bool { return a.remote(group, version) != nil }

// ServeHTTP proxies requests under /apis/<group>/<version> of an aggregated group/version and
// answers /apis/<group> for aggregated groups. handled is false for any other request.
func (a *Aggregator) ServeHTTP(w http.ResponseWriter, r *http.Request) (handled bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "apis" {
		return false
	}
	if len(parts) == 2 {
		return a.serveGroup(w, r, parts[1])
	}
	svc := a.remote(parts[1], parts[2])
	if svc == nil {
		return false
	}
	a.proxy(w, r, svc)
	return true
}

// serveGroup answers the APIGroup document of an aggregated group, as upstream's aggregator does
// itself rather than asking a backend.
func (a *Aggregator) serveGroup(w http.ResponseWriter, r *http.Request, group string) bool {
	groups := a.Groups()
	for _, g := range groups {
		if g.Name != group {
			continue
		}
		g.Kind, g.APIVersion = "APIGroup", "v1"
		body, _ := json.Marshal(g)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache, private")
		_, _ = w.Write(body)
		return true
	}
	return false
}

// Groups are the API groups served only by backends, for /apis: the versions of each group
// ordered by upstream's rules (version priority, then the Kubernetes version order).
func (a *Aggregator) Groups() []metav1.APIGroup {
	byGroup := map[string][]*apiregistrationv1.APIService{}
	var order []string
	for _, s := range a.APIServices() {
		if s.Spec.Service == nil {
			continue
		}
		if _, seen := byGroup[s.Spec.Group]; !seen {
			order = append(order, s.Spec.Group)
		}
		byGroup[s.Spec.Group] = append(byGroup[s.Spec.Group], s)
	}
	minimum := func(g string) int32 {
		var m int32
		for _, s := range byGroup[g] {
			m = max(m, s.Spec.GroupPriorityMinimum)
		}
		return m
	}
	sort.SliceStable(order, func(i, j int) bool {
		if pi, pj := minimum(order[i]), minimum(order[j]); pi != pj {
			return pi > pj
		}
		return order[i] < order[j]
	})
	var out []metav1.APIGroup
	for _, g := range order {
		svcs := byGroup[g]
		sort.SliceStable(svcs, func(i, j int) bool {
			if svcs[i].Spec.VersionPriority != svcs[j].Spec.VersionPriority {
				return svcs[i].Spec.VersionPriority > svcs[j].Spec.VersionPriority
			}
			return versionLess(svcs[j].Spec.Version, svcs[i].Spec.Version)
		})
		group := metav1.APIGroup{Name: g}
		for _, s := range svcs {
			group.Versions = append(group.Versions, metav1.GroupVersionForDiscovery{GroupVersion: g + "/" + s.Spec.Version, Version: s.Spec.Version})
		}
		group.PreferredVersion = group.Versions[0]
		out = append(out, group)
	}
	return out
}

// versionLess orders Kubernetes versions: GA before beta before alpha, higher numbers first.
func versionLess(a, b string) bool {
	return versionRank(a) < versionRank(b)
}

func versionRank(v string) int {
	rest, ok := strings.CutPrefix(v, "v")
	if !ok {
		return -1
	}
	major, stage, minor := rest, 3, 0
	for i, name := range map[int]string{2: "beta", 1: "alpha"} {
		if m, tail, found := strings.Cut(rest, name); found {
			major, stage = m, i
			minor, _ = strconv.Atoi(tail)
		}
	}
	n, err := strconv.Atoi(major)
	if err != nil {
		return -1
	}
	return n*10000 + stage*1000 + minor
}

// discoveredFor returns what the backend of the APIService name last served, or nil.
func (a *Aggregator) discoveredFor(name string) *discoveredVersion {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.discovered[name]
}

func isAvailable(s *apiregistrationv1.APIService) bool {
	for _, c := range s.Status.Conditions {
		if c.Type == apiregistrationv1.Available {
			return c.Status == apiregistrationv1.ConditionTrue
		}
	}
	return false
}

// proxyError answers as upstream's proxy handler does: plain text.
func proxyError(w http.ResponseWriter, msg string, code int) {
	http.Error(w, msg, code)
}

func (a *Aggregator) proxy(w http.ResponseWriter, r *http.Request, svc *apiregistrationv1.APIService) {
	if !isAvailable(svc) {
		proxyError(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	u := authn.UserFrom(r.Context())
	if u == nil {
		proxyError(w, "missing user", http.StatusInternalServerError)
		return
	}
	host, err := a.resolve(svc.Spec.Service)
	if err != nil {
		a.log.Debug("aggregator: resolving backend", "apiservice", svc.Name, "err", err)
		proxyError(w, "service unavailable", http.StatusServiceUnavailable)
		return
	}
	rt, err := a.transport(svc)
	if err != nil {
		proxyError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	target := &url.URL{Scheme: "https", Host: host}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.Host = ""
			// The caller's credentials stay here; the backend trusts the front proxy's headers.
			pr.Out.Header.Del("Authorization")
			setUserHeaders(pr.Out.Header, u)
			if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
				if prior := pr.In.Header.Get("X-Forwarded-For"); prior != "" {
					ip = prior + ", " + ip
				}
				pr.Out.Header.Set("X-Forwarded-For", ip)
			}
		},
		Transport:     rt,
		FlushInterval: -1, // watches and streams pass through as they come
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			proxyError(w, err.Error(), http.StatusServiceUnavailable)
		},
	}
	rp.ServeHTTP(w, r)
}

// setUserHeaders replaces any identity headers with u's, as upstream's auth proxy round tripper.
func setUserHeaders(h http.Header, u *authn.User) {
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-remote-") || strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			h.Del(k)
		}
	}
	h.Set("X-Remote-User", u.Name)
	if u.UID != "" {
		h.Set("X-Remote-Uid", u.UID)
	}
	for _, g := range u.Groups {
		h.Add("X-Remote-Group", g)
	}
	for k, vs := range u.Extra {
		for _, v := range vs {
			h.Add("X-Remote-Extra-"+url.PathEscape(k), v)
		}
	}
}

// resolve picks a ready endpoint of the Service's port, as upstream does with
// --enable-aggregator-routing: through the Service's EndpointSlices, not its cluster IP.
func (a *Aggregator) resolve(ref *apiregistrationv1.ServiceReference) (string, error) {
	svc := a.service(ref.Namespace, ref.Name)
	if svc == nil {
		return "", fmt.Errorf("service %q not found", ref.Name)
	}
	port := servicePort(ref)
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(port))), nil
	}
	if sp == nil {
		return "", fmt.Errorf("no service port %d found for service %q", port, svc.Name)
	}
	var hosts []string
	for _, es := range a.endpointSlices(ref.Namespace, ref.Name) {
		var epPort *int32
		for _, p := range es.Ports {
			if p.Name != nil && *p.Name == sp.Name && p.Port != nil {
				epPort = p.Port
			}
		}
		if epPort == nil {
			continue
		}
		for _, ep := range es.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, addr := range ep.Addresses {
				hosts = append(hosts, net.JoinHostPort(addr, strconv.Itoa(int(*epPort))))
			}
		}
	}
	if len(hosts) == 0 {
		return "", fmt.Errorf("no endpoints available for service %q", svc.Name)
	}
	return hosts[rand.IntN(len(hosts))], nil
}

func servicePort(ref *apiregistrationv1.ServiceReference) int32 {
	if ref.Port != nil {
		return *ref.Port
	}
	return 443
}

func (a *Aggregator) service(namespace, name string) *corev1.Service {
	s, _ := a.cache.CachedObject(servicesGR, namespace, name).(*corev1.Service)
	return s
}

func (a *Aggregator) endpointSlices(namespace, service string) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for _, o := range a.cache.CachedIn(endpointSlicesGR, namespace) {
		if es, ok := o.(*discoveryv1.EndpointSlice); ok && es.Namespace == namespace && es.Labels[discoveryv1.LabelServiceName] == service {
			out = append(out, es)
		}
	}
	return out
}

// transport returns the round tripper to the backend of svc: TLS verified with its caBundle for
// the Service's DNS name, or not verified with insecureSkipTLSVerify; the front-proxy client
// certificate presented.
func (a *Aggregator) transport(svc *apiregistrationv1.APIService) (*http.Transport, error) {
	ref := svc.Spec.Service
	key := fmt.Sprintf("%s/%s/%v/%x", ref.Namespace, ref.Name, svc.Spec.InsecureSkipTLSVerify, svc.Spec.CABundle)
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.transports[svc.Name]; e != nil && e.key == key {
		return e.rt, nil
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{a.proxyCert},
		ServerName:   ref.Name + "." + ref.Namespace + ".svc",
	}
	if svc.Spec.InsecureSkipTLSVerify {
		cfg.InsecureSkipVerify = true
	} else if len(svc.Spec.CABundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(svc.Spec.CABundle) {
			return nil, errors.New("unable to load root certificates: unable to parse bytes as PEM block")
		}
		cfg.RootCAs = pool
	}
	rt := &http.Transport{
		TLSClientConfig:     cfg,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 25,
		IdleConnTimeout:     90 * time.Second,
	}
	if old := a.transports[svc.Name]; old != nil {
		old.rt.CloseIdleConnections()
	}
	a.transports[svc.Name] = &transportEntry{key: key, rt: rt}
	return rt, nil
}

// discover fetches the backend's /apis/<group>/<version> as the identity upstream's availability
// check uses, returning the resource list it serves.
func (a *Aggregator) discover(ctx context.Context, svc *apiregistrationv1.APIService) (*metav1.APIResourceList, error) {
	host, err := a.resolve(svc.Spec.Service)
	if err != nil {
		return nil, err
	}
	rt, err := a.transport(svc)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: "https", Host: host, Path: "/apis/" + svc.Spec.Group + "/" + svc.Spec.Version}
	if svc.Name == "v1." {
		u.Path = "/api/" + svc.Spec.Version
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	setUserHeaders(req.Header, &authn.User{Name: "system:kube-aggregator", Groups: []string{authn.GroupMasters}})
	client := &http.Client{Transport: rt, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failing or missing response from %v: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("failing or missing response from %v: %w", u, err)
	}
	if resp.StatusCode < http.StatusOK || resp.StatusCode >= http.StatusMultipleChoices {
		return nil, fmt.Errorf("bad status from %v: %d", u, resp.StatusCode)
	}
	list := &metav1.APIResourceList{}
	if err := json.Unmarshal(body, list); err != nil || list.GroupVersion == "" {
		// Upstream only asks for a 2xx; a document it cannot read leaves discovery empty.
		return &metav1.APIResourceList{GroupVersion: svc.Spec.Group + "/" + svc.Spec.Version}, nil
	}
	return list, nil
}

// DiscoveryGroups are the aggregated groups in the form of aggregated discovery
// (apidiscovery.k8s.io/v2), built from the resource lists their backends served; a version whose
// backend has not passed its check is listed stale with no resources, as upstream does.
func (a *Aggregator) DiscoveryGroups() []apidiscoveryv2.APIGroupDiscovery {
	var out []apidiscoveryv2.APIGroupDiscovery
	for _, g := range a.Groups() {
		d := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Name}}
		for _, v := range g.Versions {
			vd := apidiscoveryv2.APIVersionDiscovery{Version: v.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessStale}
			if d := a.discoveredFor(v.Version + "." + g.Name); d != nil {
				vd.Resources = d.resources
				if d.fresh {
					vd.Freshness = apidiscoveryv2.DiscoveryFreshnessCurrent
				}
			}
			d.Versions = append(d.Versions, vd)
		}
		out = append(out, d)
	}
	return out
}

func toDiscovery(list *metav1.APIResourceList) []apidiscoveryv2.APIResourceDiscovery {
	var out []apidiscoveryv2.APIResourceDiscovery
	index := map[string]int{}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "/") {
			continue
		}
		scope := apidiscoveryv2.ScopeCluster
		if r.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		index[r.Name] = len(out)
		out = append(out, apidiscoveryv2.APIResourceDiscovery{
			Resource: r.Name, ResponseKind: &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind},
			Scope: scope, SingularResource: r.SingularName, Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
		})
	}
	for _, r := range list.APIResources {
		parent, sub, ok := strings.Cut(r.Name, "/")
		if !ok {
			continue
		}
		i, found := index[parent]
		if !found {
			continue
		}
		out[i].Subresources = append(out[i].Subresources, apidiscoveryv2.APISubresourceDiscovery{
			Subresource: sub, ResponseKind: &metav1.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}, Verbs: r.Verbs})
	}
	return out
}

// aggregatedAccept asks for aggregated discovery first, as upstream's aggregator asks backends.
const aggregatedAccept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"

// discoverAggregated asks the backend of svc for its aggregated discovery document and returns
// its entry for svc's group/version; nil when the backend does not serve that form or lacks it,
// and the caller falls back to the resource list, as upstream does.
func (a *Aggregator) discoverAggregated(ctx context.Context, svc *apiregistrationv1.APIService) *apidiscoveryv2.APIVersionDiscovery {
	host, err := a.resolve(svc.Spec.Service)
	if err != nil {
		return nil
	}
	rt, err := a.transport(svc)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, (&url.URL{Scheme: "https", Host: host, Path: "/apis"}).String(), nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Accept", aggregatedAccept)
	setUserHeaders(req.Header, &authn.User{Name: "system:kube-aggregator", Groups: []string{authn.GroupMasters}})
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "g=apidiscovery.k8s.io") ||
		!strings.Contains(resp.Header.Get("Content-Type"), "v=v2") {
		return nil
	}
	var doc apidiscoveryv2.APIGroupDiscoveryList
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&doc); err != nil {
		return nil
	}
	for _, g := range doc.Items {
		if g.Name != svc.Spec.Group {
			continue
		}
		for _, v := range g.Versions {
			if v.Version == svc.Spec.Version {
				return &v
			}
		}
	}
	return nil
}
