package apiserver

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// frontProxyClient is the name of the front-proxy client certificate the aggregator presents to
// extension API servers, upstream's --proxy-client-cert-file, and the one allowed name.
const frontProxyClient = "front-proxy-client"

// The API server's client certificate toward kubelets (upstream's --kubelet-client-certificate,
// as kubeadm makes it): stored as apiserver-kubelet-client.crt/.key under the pki directory and
// signed by the cluster CA, which kubelets trust for their clients.
const (
	kubeletClient      = "apiserver-kubelet-client"
	kubeletClientName  = "kube-apiserver-kubelet-client"
	kubeletClientGroup = "kubeadm:cluster-admins"
)

// AuthenticationConfigMap is the kube-system ConfigMap extension API servers read to
// authenticate clients and the front proxy.
const AuthenticationConfigMap = "extension-apiserver-authentication"

// autoManagedLabel marks the APIServices the server registers itself.
const autoManagedLabel = "kube-aggregator.kubernetes.io/automanaged"

// apiServicePriority is upstream's discovery order of a built-in group/version.
type apiServicePriority struct{ group, version int32 }

// apiServicePriorities are upstream kube-apiserver's priorities of its own group/versions.
var apiServicePriorities = map[schema.GroupVersion]apiServicePriority{
	{Group: "", Version: "v1"}:                                {18000, 1},
	{Group: "apiregistration.k8s.io", Version: "v1"}:          {18000, 15},
	{Group: "apps", Version: "v1"}:                            {17800, 15},
	{Group: "events.k8s.io", Version: "v1"}:                   {17750, 15},
	{Group: "authentication.k8s.io", Version: "v1"}:           {17700, 15},
	{Group: "authorization.k8s.io", Version: "v1"}:            {17600, 15},
	{Group: "autoscaling", Version: "v1"}:                     {17500, 15},
	{Group: "autoscaling", Version: "v2"}:                     {17500, 30},
	{Group: "batch", Version: "v1"}:                           {17400, 15},
	{Group: "certificates.k8s.io", Version: "v1"}:             {17300, 15},
	{Group: "networking.k8s.io", Version: "v1"}:               {17200, 15},
	{Group: "policy", Version: "v1"}:                          {17100, 15},
	{Group: "rbac.authorization.k8s.io", Version: "v1"}:       {17000, 15},
	{Group: "storage.k8s.io", Version: "v1"}:                  {16800, 15},
	{Group: "apiextensions.k8s.io", Version: "v1"}:            {16700, 15},
	{Group: "admissionregistration.k8s.io", Version: "v1"}:    {16700, 15},
	{Group: "scheduling.k8s.io", Version: "v1"}:               {16600, 15},
	{Group: "coordination.k8s.io", Version: "v1"}:             {16500, 15},
	{Group: "node.k8s.io", Version: "v1"}:                     {16300, 15},
	{Group: "discovery.k8s.io", Version: "v1"}:                {16200, 15},
	{Group: "resource.k8s.io", Version: "v1"}:                 {16200, 21},
	{Group: "flowcontrol.apiserver.k8s.io", Version: "v1"}:    {16100, 21},
	{Group: "storagemigration.k8s.io", Version: "v1alpha1"}:   {15800, 9},
	{Group: "storagemigration.k8s.io", Version: "v1beta1"}:    {15800, 12},
	{Group: "internal.apiserver.k8s.io", Version: "v1alpha1"}: {16000, 9},
}

// bootstrapAggregation creates upstream's local APIServices for every built-in group/version
// (spec.service null; the status loop marks them Available, reason Local) and publishes the
// client and front-proxy trust in kube-system/extension-apiserver-authentication.
func (s *Server) bootstrapAggregation(ctx context.Context, c kubernetes.Interface) error {
	served := map[string]bool{}
	for _, g := range s.catalogue.Groups() {
		for _, v := range g.Versions {
			served[v+"."+g.Group] = true
		}
	}
	// Local APIServices this server registered for group/versions it no longer serves go, as
	// upstream's autoregister controller removes them.
	for _, svc := range s.aggregator.APIServices() {
		if svc.Spec.Service != nil || served[svc.Name] || svc.Labels[autoManagedLabel] == "" {
			continue
		}
		err := c.CoreV1().RESTClient().Delete().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices", svc.Name).Do(ctx).Error()
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("apiservice %s: %w", svc.Name, err)
		}
	}
	for _, g := range s.catalogue.Groups() {
		for _, v := range g.Versions {
			gv := schema.GroupVersion{Group: g.Group, Version: v}
			p, ok := apiServicePriorities[gv]
			if !ok {
				p = apiServicePriority{15000, 9}
			}
			svc := &apiregistrationv1.APIService{
				TypeMeta: metav1.TypeMeta{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService"},
				ObjectMeta: metav1.ObjectMeta{Name: v + "." + g.Group,
					Labels: map[string]string{autoManagedLabel: "onstart"}},
				Spec: apiregistrationv1.APIServiceSpec{Group: g.Group, Version: v, GroupPriorityMinimum: p.group, VersionPriority: p.version},
			}
			body, _ := json.Marshal(svc)
			err := c.CoreV1().RESTClient().Post().AbsPath("/apis/apiregistration.k8s.io/v1/apiservices").
				SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error()
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("apiservice %s: %w", svc.Name, err)
			}
		}
	}
	list := func(v ...string) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: AuthenticationConfigMap, Namespace: metav1.NamespaceSystem},
		Data: map[string]string{
			"client-ca-file":                     string(s.bundle.CAPEM),
			"requestheader-client-ca-file":       string(s.frontProxy.CAPEM),
			"requestheader-allowed-names":        list(frontProxyClient),
			"requestheader-username-headers":     list("X-Remote-User"),
			"requestheader-uid-headers":          list("X-Remote-Uid"),
			"requestheader-group-headers":        list("X-Remote-Group"),
			"requestheader-extra-headers-prefix": list("X-Remote-Extra-"),
		},
	}
	cur, err := c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, cm.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, cm, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
	case err == nil:
		cur.Data = cm.Data
		_, err = c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", AuthenticationConfigMap, err)
	}
	return nil
}
