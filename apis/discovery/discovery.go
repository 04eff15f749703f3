// Package discovery serves the discovery documents: /api, /apis, each group and group/version, and
// the aggregated form (apidiscovery.k8s.io/v2) that kubectl and client-go ask for first.
package discovery

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"

	"github.com/keelson/keelson/apis/catalogue"
	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// groupOrder is the order upstream lists its groups in /apis; groups not named come after, by name.
var groupOrder = []string{
	"apiregistration.k8s.io", "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io",
	"autoscaling", "batch", "certificates.k8s.io", "networking.k8s.io", "policy", "rbac.authorization.k8s.io",
	"storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
	"coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "resource.k8s.io", "flowcontrol.apiserver.k8s.io",
	"storagemigration.k8s.io",
}

// Server answers discovery requests from a catalogue. Its documents are built once.
type Server struct {
	codecs     serializer.CodecFactory
	legacy     *metav1.APIVersions
	groups     *metav1.APIGroupList
	groupByKey map[string]*metav1.APIGroup
	resources  map[schema.GroupVersion]*metav1.APIResourceList
	aggregated map[bool]*apidiscoveryv2.APIGroupDiscoveryList // by legacy (/api) or not (/apis)

	// ExtraGroups and ExtraDiscovery, when set, return the groups served by other servers (API
	// aggregation), listed in /apis after the built-in ones, in each form.
	ExtraGroups    func() []metav1.APIGroup
	ExtraDiscovery func() []apidiscoveryv2.APIGroupDiscovery
}

// New builds the documents of c. serverAddress is reported to clients in /api.
func New(c *catalogue.Catalogue, scheme *runtime.Scheme, serverAddress string) *Server {
	s := &Server{
		codecs:     serializer.NewCodecFactory(scheme),
		groupByKey: map[string]*metav1.APIGroup{},
		resources:  map[schema.GroupVersion]*metav1.APIResourceList{},
		aggregated: map[bool]*apidiscoveryv2.APIGroupDiscoveryList{},
	}
	s.legacy = &metav1.APIVersions{Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: serverAddress}}}
	s.legacy.SetGroupVersionKind(schema.GroupVersionKind{Kind: "APIVersions", Version: "v1"})
	s.groups = &metav1.APIGroupList{}
	s.groups.SetGroupVersionKind(schema.GroupVersionKind{Kind: "APIGroupList", Version: "v1"})
	for _, legacy := range []bool{true, false} {
		l := &apidiscoveryv2.APIGroupDiscoveryList{}
		l.SetGroupVersionKind(schema.GroupVersionKind{Group: "apidiscovery.k8s.io", Version: "v2", Kind: "APIGroupDiscoveryList"})
		s.aggregated[legacy] = l
	}
	for _, g := range orderedGroups(c.Groups()) {
		var versions []metav1.GroupVersionForDiscovery
		agg := apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: g.Group}}
		for _, v := range g.Versions {
			gv := schema.GroupVersion{Group: g.Group, Version: v}
			versions = append(versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: v})
			list := &metav1.APIResourceList{GroupVersion: gv.String()}
			list.SetGroupVersionKind(schema.GroupVersionKind{Kind: "APIResourceList", Version: "v1"})
			aggVersion := apidiscoveryv2.APIVersionDiscovery{Version: v, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
			for _, r := range c.ForGroupVersion(gv) {
				list.APIResources = append(list.APIResources, apiResources(r)...)
				aggVersion.Resources = append(aggVersion.Resources, aggregatedResource(r))
			}
			s.resources[gv] = list
			agg.Versions = append(agg.Versions, aggVersion)
		}
		s.aggregated[g.Group == ""].Items = append(s.aggregated[g.Group == ""].Items, agg)
		if g.Group == "" {
			continue
		}
		group := metav1.APIGroup{Name: g.Group, Versions: versions, PreferredVersion: versions[0]}
		s.groups.Groups = append(s.groups.Groups, group)
		gcopy := group
		gcopy.SetGroupVersionKind(schema.GroupVersionKind{Kind: "APIGroup", Version: "v1"})
		s.groupByKey[g.Group] = &gcopy
	}
	return s
}

func orderedGroups(groups []catalogue.GroupVersions) []catalogue.GroupVersions {
	rank := map[string]int{"": -1}
	for i, g := range groupOrder {
		rank[g] = i
	}
	out := append([]catalogue.GroupVersions(nil), groups...)
	sort.SliceStable(out, func(i, j int) bool {
		ri, oki := rank[out[i].Group]
		rj, okj := rank[out[j].Group]
		switch {
		case oki && okj:
			return ri < rj
		case oki != okj:
			return oki
		}
		return out[i].Group < out[j].Group
	})
	return out
}

func apiResources(r *catalogue.Resource) []metav1.APIResource {
	out := []metav1.APIResource{{
		Name: r.Resource, SingularName: r.Singular(), Namespaced: r.Namespaced, Kind: r.Kind,
		Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories, StorageVersionHash: storageVersionHash(r),
	}}
	if r.Virtual {
		out[0].StorageVersionHash = ""
	}
	for _, sub := range r.Subresources {
		a := metav1.APIResource{Name: r.Resource + "/" + sub.Name, Namespaced: r.Namespaced, Kind: r.Kind, Verbs: sub.Verbs}
		if sub.Kind.Kind != "" {
			a.Kind = sub.Kind.Kind
			if sub.Kind.GroupVersion() != r.GroupVersion() {
				a.Group, a.Version = sub.Kind.Group, sub.Kind.Version
			}
		}
		out = append(out, a)
	}
	return out
}

func aggregatedResource(r *catalogue.Resource) apidiscoveryv2.APIResourceDiscovery {
	scope := apidiscoveryv2.ScopeCluster
	if r.Namespaced {
		scope = apidiscoveryv2.ScopeNamespace
	}
	// Upstream names only the kind when it is the resource's own group/version.
	d := apidiscoveryv2.APIResourceDiscovery{
		Resource: r.Resource, ResponseKind: &metav1.GroupVersionKind{Kind: r.Kind},
		Scope: scope, SingularResource: r.Singular(), Verbs: r.Verbs, ShortNames: r.ShortNames, Categories: r.Categories,
	}
	for _, sub := range r.Subresources {
		kind := metav1.GroupVersionKind{Kind: r.Kind}
		if sub.Kind.Kind != "" {
			kind.Kind = sub.Kind.Kind
			if sub.Kind.GroupVersion() != r.GroupVersion() {
				kind.Group, kind.Version = sub.Kind.Group, sub.Kind.Version
			}
		}
		d.Subresources = append(d.Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: sub.Name, ResponseKind: &kind, Verbs: sub.Verbs})
	}
	return d
}

// storageVersionHash is an opaque token that changes when the storage version does, computed as
// upstream computes it.
func storageVersionHash(r *catalogue.Resource) string {
	sum := sha256.Sum256([]byte(r.StorageVersion.Group + "/" + r.StorageVersion.Version + "/" + r.Kind))
	return base64.StdEncoding.EncodeToString(sum[:8])
}

// ServeHTTP answers /api, /api/v1, /apis, /apis/{group} and /apis/{group}/{version}. ok is false
// for any other path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) (ok bool) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "api":
		if s.serveAggregated(w, r, true) {
			return true
		}
		s.write(w, r, s.legacy)
	case len(parts) == 2 && parts[0] == "api":
		list, found := s.resources[schema.GroupVersion{Version: parts[1]}]
		if !found {
			return false
		}
		s.write(w, r, list)
	case len(parts) == 1 && parts[0] == "apis":
		if s.serveAggregated(w, r, false) {
			return true
		}
		groups := s.groups
		if s.ExtraGroups != nil {
			if extra := s.ExtraGroups(); len(extra) > 0 {
				groups = groups.DeepCopy()
				groups.Groups = append(groups.Groups, extra...)
			}
		}
		s.write(w, r, groups)
	case len(parts) == 2 && parts[0] == "apis":
		g, found := s.groupByKey[parts[1]]
		if !found {
			return false
		}
		s.write(w, r, g)
	case len(parts) == 3 && parts[0] == "apis":
		list, found := s.resources[schema.GroupVersion{Group: parts[1], Version: parts[2]}]
		if !found {
			return false
		}
		s.write(w, r, list)
	default:
		return false
	}
	return true
}

// serveAggregated answers with the aggregated document when the Accept header asks for it first
// among what it accepts.
func (s *Server) serveAggregated(w http.ResponseWriter, r *http.Request, legacy bool) bool {
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		if params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" &&
			(mt == "application/json" || mt == "application/vnd.kubernetes.protobuf") {
			info, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mt)
			if !ok {
				continue
			}
			doc := s.aggregated[legacy]
			if !legacy && s.ExtraDiscovery != nil {
				if extra := s.ExtraDiscovery(); len(extra) > 0 {
					doc = doc.DeepCopy()
					doc.Items = append(doc.Items, extra...)
				}
			}
			s.encode(w, r, info, mt+";g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", doc)
			return true
		}
		if mt == "application/json" || mt == "*/*" || mt == "application/vnd.kubernetes.protobuf" {
			return false
		}
	}
	return false
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, obj runtime.Object) {
	mt := "application/json"
	for _, clause := range strings.Split(r.Header.Get("Accept"), ",") {
		m, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err == nil && len(params) == 0 && (m == "application/json" || m == "application/yaml" || m == "application/vnd.kubernetes.protobuf") {
			mt = m
			break
		}
	}
	info, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mt)
	s.encode(w, r, info, mt, obj)
}

func (s *Server) encode(w http.ResponseWriter, r *http.Request, info runtime.SerializerInfo, contentType string, obj runtime.Object) {
	body, err := runtime.Encode(info.Serializer, obj)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := fmt.Sprintf("%q", fmt.Sprintf("%X", sum[:]))
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.Header().Set("ETag", etag)
	w.Header().Set("Vary", "Accept")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(body)
}
