package openapi

import (
	"fmt"
	"strings"

	"github.com/keelson/keelson/apis/catalogue"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

const (
	metaPkg     = "io.k8s.apimachinery.pkg.apis.meta.v1."
	statusModel = metaPkg + "Status"
	deleteModel = metaPkg + "DeleteOptions"
	watchModel  = metaPkg + "WatchEvent"
	patchModel  = metaPkg + "Patch"
)

var (
	produces       = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	producesList   = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	producesWatch  = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	consumesAny    = []string{"*/*"}
	consumesPatch  = []string{"application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json", "application/apply-patch+yaml", "application/apply-patch+cbor"}
	schemesHTTPS   = []string{"https"}
	listParamNames = []string{"allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch"}
)

// query parameters, described as upstream describes them.
var queryParams = map[string]spec.Parameter{
	"allowWatchBookmarks":  queryParam("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored."),
	"continue":             queryParam("continue", "string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize."),
	"fieldSelector":        queryParam("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
	"labelSelector":        queryParam("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
	"limit":                queryParam("limit", "integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results."),
	"resourceVersion":      queryParam("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
	"resourceVersionMatch": queryParam("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
	"sendInitialEvents":    queryParam("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent."),
	"timeoutSeconds":       queryParam("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
	"watch":                queryParam("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
	"pretty":               queryParam("pretty", "string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget)."),
	"dryRun":               queryParam("dryRun", "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
	"fieldManager":         queryParam("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
	"fieldValidation":      queryParam("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
	"force":                queryParam("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."),
	"gracePeriodSeconds":   queryParam("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately."),
	"orphanDependents":     queryParam("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both."),
	"propagationPolicy":    queryParam("propagationPolicy", "string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
	"ignoreStoreReadErrorWithClusterBreakingPotential": queryParam("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it"),
}

func queryParam(name, typ, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: name, In: "query", Description: desc},
		SimpleSchema:      spec.SimpleSchema{Type: typ},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}

func refSchema(model string) *spec.Schema {
	return &spec.Schema{SchemaProps: spec.SchemaProps{Ref: spec.MustCreateRef("#/definitions/" + model)}}
}

func params(names ...string) []spec.Parameter {
	out := make([]spec.Parameter, 0, len(names))
	for _, n := range names {
		out = append(out, queryParams[n])
	}
	return out
}

func pathParam(name, desc string) spec.Parameter {
	return spec.Parameter{
		ParamProps:        spec.ParamProps{Name: name, In: "path", Description: desc, Required: true},
		SimpleSchema:      spec.SimpleSchema{Type: "string"},
		CommonValidations: spec.CommonValidations{UniqueItems: true},
	}
}

func bodyParam(model string) spec.Parameter {
	return spec.Parameter{ParamProps: spec.ParamProps{Name: "body", In: "body", Required: true, Schema: refSchema(model)}}
}

func responses(codes map[int]string) *spec.Responses {
	r := &spec.Responses{ResponsesProps: spec.ResponsesProps{StatusCodeResponses: map[int]spec.Response{}}}
	for code, model := range codes {
		resp := spec.Response{ResponseProps: spec.ResponseProps{Description: httpText(code)}}
		if model != "" {
			resp.Schema = refSchema(model)
		}
		r.StatusCodeResponses[code] = resp
	}
	r.StatusCodeResponses[401] = spec.Response{ResponseProps: spec.ResponseProps{Description: "Unauthorized"}}
	return r
}

func httpText(code int) string {
	switch code {
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	}
	return fmt.Sprint(code)
}

// names of a resource in operation ids and tags: "CoreV1", "core_v1", "AppsV1", "apps_v1",
// "RbacAuthorizationV1", "rbacAuthorization_v1".
func groupCamel(group string) string {
	if group == "" {
		return "Core"
	}
	var b strings.Builder
	for _, part := range strings.Split(strings.TrimSuffix(group, ".k8s.io"), ".") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

func tag(gv schema.GroupVersion) string {
	g := groupCamel(gv.Group)
	return strings.ToLower(g[:1]) + g[1:] + "_" + gv.Version
}

func (b *builder) model(gvk schema.GroupVersionKind) (string, error) {
	name, ok := b.names[gvk]
	if !ok {
		return "", fmt.Errorf("openapi: no model for %s", gvk)
	}
	if _, ok := b.defs[name]; !ok {
		return "", fmt.Errorf("openapi: no definition %s for %s", name, gvk)
	}
	return name, nil
}

type opSpec struct {
	id, action, description string
	gvk                     schema.GroupVersionKind
	params                  []spec.Parameter
	responses               *spec.Responses
	consumes, produces      []string
	tag                     string
}

func operation(o opSpec) *spec.Operation {
	op := &spec.Operation{OperationProps: spec.OperationProps{
		ID: o.id, Description: o.description, Tags: []string{o.tag},
		Consumes: o.consumes, Produces: o.produces, Schemes: schemesHTTPS,
		Parameters: o.params, Responses: o.responses,
	}}
	op.AddExtension("x-kubernetes-action", o.action)
	op.AddExtension(gvkExtension, map[string]string{"group": o.gvk.Group, "version": o.gvk.Version, "kind": o.gvk.Kind})
	return op
}

func prefix(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

// paths returns a resource's paths with their operations, named as upstream names them.
func (b *builder) paths(r *catalogue.Resource) (map[string]spec.PathItem, error) {
	gv := r.GroupVersion()
	gvk := r.GVK()
	kind := r.Kind
	obj, err := b.model(gvk)
	if err != nil {
		return nil, err
	}
	listModel, _ := b.model(gv.WithKind(kind + "List"))
	t := tag(gv)
	g := groupCamel(gv.Group) + strings.ToUpper(gv.Version[:1]) + gv.Version[1:]
	ns := ""
	base := prefix(gv)
	collection := base + "/" + r.Resource
	watchBase := base + "/watch/" + r.Resource
	var scope []spec.Parameter
	if r.Namespaced {
		ns = "Namespaced"
		collection = base + "/namespaces/{namespace}/" + r.Resource
		watchBase = base + "/watch/namespaces/{namespace}/" + r.Resource
		scope = []spec.Parameter{pathParam("namespace", "object name and auth scope, such as for teams and projects")}
	}
	item := collection + "/{name}"
	nameParam := pathParam("name", "name of the "+kind)
	out := map[string]spec.PathItem{}
	pathItem := func(path string, shared []spec.Parameter) spec.PathItem {
		p, ok := out[path]
		if !ok {
			p.Parameters = append(append([]spec.Parameter{}, shared...), queryParams["pretty"])
		}
		return p
	}

	if r.Virtual {
		switch {
		case r.HasVerb("create"):
			p := pathItem(collection, scope)
			p.Post = operation(opSpec{id: "create" + g + ns + kind, action: "post", description: "create a " + kind, gvk: gvk, tag: t,
				params:    append([]spec.Parameter{bodyParam(obj)}, params("dryRun", "fieldManager", "fieldValidation")...),
				responses: responses(map[int]string{200: obj, 201: obj, 202: obj}), consumes: consumesAny, produces: produces})
			out[collection] = p
		case r.HasVerb("list"):
			p := pathItem(collection, scope)
			p.Get = operation(opSpec{id: "list" + g + ns + kind, action: "list", description: "list objects of kind " + kind, gvk: gvk, tag: t,
				params: params(listParamNames...), responses: responses(map[int]string{200: listModel}), consumes: consumesAny, produces: producesList})
			out[collection] = p
			ip := pathItem(item, append([]spec.Parameter{nameParam}, scope...))
			ip.Get = operation(opSpec{id: "read" + g + ns + kind, action: "get", description: "read the specified " + kind, gvk: gvk, tag: t,
				responses: responses(map[int]string{200: obj}), consumes: consumesAny, produces: produces})
			out[item] = ip
		}
		return out, nil
	}

	writeParams := params("dryRun", "fieldManager", "fieldValidation")
	patchParams := append([]spec.Parameter{bodyParam(patchModel)}, params("dryRun", "fieldManager", "fieldValidation", "force")...)
	deleteParams := append([]spec.Parameter{bodyParam(deleteModel)}, params("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential", "orphanDependents", "propagationPolicy")...)

	p := pathItem(collection, scope)
	if r.HasVerb("list") {
		p.Get = operation(opSpec{id: "list" + g + ns + kind, action: "list", description: "list or watch objects of kind " + kind, gvk: gvk, tag: t,
			params: params(listParamNames...), responses: responses(map[int]string{200: listModel}), consumes: consumesAny, produces: producesList})
	}
	if r.HasVerb("create") {
		p.Post = operation(opSpec{id: "create" + g + ns + kind, action: "post", description: "create a " + kind, gvk: gvk, tag: t,
			params: append([]spec.Parameter{bodyParam(obj)}, writeParams...), responses: responses(map[int]string{200: obj, 201: obj, 202: obj}), consumes: consumesAny, produces: produces})
	}
	if r.HasVerb("deletecollection") {
		p.Delete = operation(opSpec{id: "delete" + g + "Collection" + ns + kind, action: "deletecollection", description: "delete collection of " + kind, gvk: gvk, tag: t,
			params:    append(deleteParams, params("continue", "fieldSelector", "labelSelector", "limit", "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds")...),
			responses: responses(map[int]string{200: statusModel}), consumes: consumesAny, produces: produces})
	}
	out[collection] = p

	ip := pathItem(item, append([]spec.Parameter{nameParam}, scope...))
	ip.Get = operation(opSpec{id: "read" + g + ns + kind, action: "get", description: "read the specified " + kind, gvk: gvk, tag: t,
		responses: responses(map[int]string{200: obj}), consumes: consumesAny, produces: produces})
	if r.HasVerb("update") {
		ip.Put = operation(opSpec{id: "replace" + g + ns + kind, action: "put", description: "replace the specified " + kind, gvk: gvk, tag: t,
			params: append([]spec.Parameter{bodyParam(obj)}, writeParams...), responses: responses(map[int]string{200: obj, 201: obj}), consumes: consumesAny, produces: produces})
	}
	if r.HasVerb("patch") {
		ip.Patch = operation(opSpec{id: "patch" + g + ns + kind, action: "patch", description: "partially update the specified " + kind, gvk: gvk, tag: t,
			params: patchParams, responses: responses(map[int]string{200: obj, 201: obj}), consumes: consumesPatch, produces: produces})
	}
	if r.HasVerb("delete") {
		ip.Delete = operation(opSpec{id: "delete" + g + ns + kind, action: "delete", description: "delete a " + kind, gvk: gvk, tag: t,
			params: deleteParams, responses: responses(map[int]string{200: statusModel, 202: statusModel}), consumes: consumesAny, produces: produces})
	}
	out[item] = ip

	if r.HasVerb("watch") {
		wl := pathItem(watchBase, append(scope, params(listParamNames...)...))
		wl.Get = operation(opSpec{id: "watch" + g + ns + kind + "List", action: "watchlist", description: "watch individual changes to a list of " + kind + ". deprecated: use the 'watch' parameter with a list operation instead.",
			gvk: gvk, tag: t, responses: responses(map[int]string{200: watchModel}), consumes: consumesAny, produces: producesWatch})
		out[watchBase] = wl
		wi := pathItem(watchBase+"/{name}", append(append([]spec.Parameter{nameParam}, scope...), params(listParamNames...)...))
		wi.Get = operation(opSpec{id: "watch" + g + ns + kind, action: "watch", description: "watch changes to an object of kind " + kind + ". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter.",
			gvk: gvk, tag: t, responses: responses(map[int]string{200: watchModel}), consumes: consumesAny, produces: producesWatch})
		out[watchBase+"/{name}"] = wi
	}
	if r.Namespaced && r.HasVerb("watch") {
		allWatch := base + "/watch/" + r.Resource
		aw := pathItem(allWatch, params(listParamNames...))
		aw.Get = operation(opSpec{id: "watch" + g + kind + "ListForAllNamespaces", action: "watchlist", description: "watch individual changes to a list of " + kind + ". deprecated: use the 'watch' parameter with a list operation instead.",
			gvk: gvk, tag: t, responses: responses(map[int]string{200: watchModel}), consumes: consumesAny, produces: producesWatch})
		out[allWatch] = aw
	}
	if r.Namespaced && r.HasVerb("list") {
		all := base + "/" + r.Resource
		ap := pathItem(all, params(listParamNames...))
		ap.Get = operation(opSpec{id: "list" + g + kind + "ForAllNamespaces", action: "list", description: "list or watch objects of kind " + kind, gvk: gvk, tag: t,
			responses: responses(map[int]string{200: listModel}), consumes: consumesAny, produces: producesList})
		out[all] = ap
	}

	for _, sub := range r.Subresources {
		if err := b.subresourcePaths(out, r, sub, item, g, ns, t, scope, nameParam, writeParams, patchParams); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// subresourcePaths adds the operations of the subresources that read and write objects; the
// streaming ones (log, exec, attach, port-forward, proxy) come with the node agent.
func (b *builder) subresourcePaths(out map[string]spec.PathItem, r *catalogue.Resource, sub catalogue.Subresource, item, g, ns, t string,
	scope []spec.Parameter, nameParam spec.Parameter, writeParams, patchParams []spec.Parameter) error {
	gvk := r.GVK()
	if sub.Kind.Kind != "" {
		gvk = sub.Kind
	}
	switch sub.Name {
	case "log", "exec", "attach", "portforward", "proxy":
		return nil
	}
	obj, err := b.model(gvk)
	if err != nil {
		return err
	}
	suffix := strings.ToUpper(sub.Name[:1]) + sub.Name[1:]
	path := item + "/" + sub.Name
	p, ok := out[path]
	if !ok {
		p.Parameters = append(append([]spec.Parameter{nameParam}, scope...), queryParams["pretty"])
	}
	has := func(v string) bool {
		for _, x := range sub.Verbs {
			if x == v {
				return true
			}
		}
		return false
	}
	if has("get") {
		p.Get = operation(opSpec{id: "read" + g + ns + r.Kind + suffix, action: "get", description: "read " + sub.Name + " of the specified " + r.Kind, gvk: gvk, tag: t,
			responses: responses(map[int]string{200: obj}), consumes: consumesAny, produces: produces})
	}
	if has("update") {
		p.Put = operation(opSpec{id: "replace" + g + ns + r.Kind + suffix, action: "put", description: "replace " + sub.Name + " of the specified " + r.Kind, gvk: gvk, tag: t,
			params: append([]spec.Parameter{bodyParam(obj)}, writeParams...), responses: responses(map[int]string{200: obj, 201: obj}), consumes: consumesAny, produces: produces})
	}
	if has("patch") {
		p.Patch = operation(opSpec{id: "patch" + g + ns + r.Kind + suffix, action: "patch", description: "partially update " + sub.Name + " of the specified " + r.Kind, gvk: gvk, tag: t,
			params: patchParams, responses: responses(map[int]string{200: obj, 201: obj}), consumes: consumesPatch, produces: produces})
	}
	if has("create") {
		p.Post = operation(opSpec{id: "create" + g + ns + r.Kind + suffix, action: "post", description: "create " + sub.Name + " of a " + r.Kind, gvk: gvk, tag: t,
			params: append([]spec.Parameter{bodyParam(obj)}, writeParams...), responses: responses(map[int]string{200: obj, 201: obj, 202: obj}), consumes: consumesAny, produces: produces})
	}
	out[path] = p
	return nil
}

// discoveryOperation is a GET of a discovery document, as upstream lists them in OpenAPI.
func discoveryOperation(id, description, tag, model string) spec.PathItem {
	return spec.PathItem{PathItemProps: spec.PathItemProps{Get: &spec.Operation{OperationProps: spec.OperationProps{
		ID: id, Description: description, Tags: []string{tag}, Consumes: []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"},
		Produces: produces, Schemes: schemesHTTPS, Responses: responses(map[int]string{200: model}),
	}}}}
}
