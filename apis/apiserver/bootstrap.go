package apiserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/pki"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// LoopbackConfig is a client config for components in this process: the admin-level loopback
// identity, over the real HTTPS listener, as upstream's in-process clients use.
func (s *Server) LoopbackConfig() (*rest.Config, error) {
	cert, key, err := s.bundle.ClientPair("loopback", "system:apiserver", []string{authn.GroupMasters})
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            s.URL,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.bundle.CAPEM, CertFile: cert, KeyFile: key},
		QPS:             -1,
		UserAgent:       "keelson-apiserver",
	}, nil
}

// AdvertiseURL is where other nodes reach this server, as cluster-info publishes it.
func (s *Server) AdvertiseURL() string {
	return "https://" + net.JoinHostPort(s.opts.AdvertiseAddress, strconv.Itoa(s.opts.Port))
}

// CAPEM is the cluster CA certificate, PEM-encoded.
func (s *Server) CAPEM() []byte { return s.bundle.CAPEM }

// CAKeyPEM is the cluster CA's private key, PEM-encoded, for the controller manager's signer
// (upstream's --cluster-signing-key-file).
func (s *Server) CAKeyPEM() ([]byte, error) {
	return os.ReadFile(filepath.Join(s.bundle.Dir, pki.CAKey))
}

// writeAdminKubeconfig writes a kubeconfig for the admin user (group system:masters) with the
// credentials inline, so that the file stands alone.
func (s *Server) writeAdminKubeconfig(path string) error {
	certPath, keyPath, err := s.bundle.ClientPair("admin", "kubernetes-admin", []string{authn.GroupMasters})
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["keelson"] = &clientcmdapi.Cluster{Server: s.URL, CertificateAuthorityData: s.bundle.CAPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts["keelson"] = &clientcmdapi.Context{Cluster: "keelson", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "keelson"
	return clientcmd.WriteToFile(*cfg, path)
}

// loopbackClient is the API server's own client for what it keeps in the cluster.
func (s *Server) loopbackClient() (kubernetes.Interface, error) {
	cfg, err := s.LoopbackConfig()
	if err != nil {
		return nil, err
	}
	// The kubernetes Service's Endpoints are kept knowingly, deprecation warning or not.
	cfg.WarningHandler = rest.NoWarnings{}
	return kubernetes.NewForConfig(cfg)
}

// LegacyTokenTrackingConfigMap is the kube-system ConfigMap whose "since" holds the date from
// which the server tracks the use of legacy (Secret-based) service-account tokens.
const LegacyTokenTrackingConfigMap = "kube-apiserver-legacy-service-account-token-tracking"

// bootstrap creates what a cluster has from the start: the system namespaces, the kubernetes
// Service with endpoints pointing at this server, and the system priority classes.
func (s *Server) bootstrap(ctx context.Context) error {
	c, err := s.loopbackClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic, corev1.NamespaceNodeLease} {
		_, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("namespace %s: %w", name, err)
		}
	}
	for name, value := range map[string]int32{"system-node-critical": 2000001000, "system-cluster-critical": 2000000000} {
		pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value,
			Description: "Used for system critical pods that must not be moved from their current node."}
		if name == "system-cluster-critical" {
			pc.Description = "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."
		}
		if _, err := c.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("priority class %s: %w", name, err)
		}
	}
	if err := s.bootstrapAggregation(ctx, c); err != nil {
		return err
	}
	if err := s.publishClusterInfo(ctx, c); err != nil {
		return err
	}
	return s.reconcileKubernetesService(ctx, c)
}

// ClusterInfo is the kube-public ConfigMap holding, under "kubeconfig", a kubeconfig with the
// cluster's address and CA, as kubeadm publishes it for joining nodes.
const ClusterInfo = "cluster-info"

// publishClusterInfo writes kube-public/cluster-info, or updates its kubeconfig when the
// address or CA changed (dropping the signatures of the old content).
func (s *Server) publishClusterInfo(ctx context.Context, c kubernetes.Interface) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{
		Server:                   s.AdvertiseURL(),
		CertificateAuthorityData: s.bundle.CAPEM,
	}
	content, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	cms := c.CoreV1().ConfigMaps(metav1.NamespacePublic)
	cm, err := cms.Get(ctx, ClusterInfo, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ClusterInfo, Namespace: metav1.NamespacePublic},
			Data: map[string]string{"kubeconfig": string(content)}}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster-info: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("cluster-info: %w", err)
	case cm.Data["kubeconfig"] == string(content):
		return nil
	}
	data := map[string]string{"kubeconfig": string(content)}
	for k, v := range cm.Data {
		if !strings.HasPrefix(k, "jws-kubeconfig-") && k != "kubeconfig" {
			data[k] = v
		}
	}
	cm.Data = data
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("cluster-info: %w", err)
	}
	return nil
}

// kubernetesServiceInterval is how often the API server puts the kubernetes Service and its
// endpoints back as they should be, upstream's default endpoint reconciler interval.
const kubernetesServiceInterval = 10 * time.Second

// keepKubernetesService reconciles the kubernetes Service, its Endpoints and its EndpointSlice
// every kubernetesServiceInterval until ctx is done, as upstream's kubernetes-service controller
// does: a deleted or altered object is back within the interval.
func (s *Server) keepKubernetesService(ctx context.Context) {
	c, err := s.loopbackClient()
	if err != nil {
		s.log.Error("kubernetes service: no client", "err", err)
		return
	}
	t := time.NewTicker(kubernetesServiceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := s.reconcileKubernetesService(rctx, c); err != nil && ctx.Err() == nil {
			s.log.Warn("kubernetes service: reconcile failed", "err", err)
		}
		cancel()
	}
}

// reconcileKubernetesService creates the kubernetes Service if it is missing and points its
// Endpoints and EndpointSlice at this server.
func (s *Server) reconcileKubernetesService(ctx context.Context, c kubernetes.Interface) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: s.alloc.IPs.Nth(1).String(),
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(s.opts.Port))}},
		},
	}
	if _, err := c.CoreV1().Services(metav1.NamespaceDefault).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubernetes service: %w", err)
	}
	// The date legacy service-account token tracking began, which the controller manager's
	// legacy token cleaner reads, as upstream's legacytokentracking controller records it.
	tracking := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: LegacyTokenTrackingConfigMap, Namespace: metav1.NamespaceSystem},
		Data: map[string]string{"since": time.Now().UTC().Format(time.DateOnly)}}
	if _, err := c.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, tracking, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("legacy token tracking: %w", err)
	}
	return s.reconcileEndpoints(ctx, c)
}

// reconcileEndpoints points the kubernetes Service's Endpoints and EndpointSlice at this server.
func (s *Server) reconcileEndpoints(ctx context.Context, c kubernetes.Interface) error {
	port := int32(s.opts.Port)
	want := []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: s.opts.AdvertiseAddress}},
		Ports:     []corev1.EndpointPort{{Name: "https", Port: port, Protocol: corev1.ProtocolTCP}},
	}}
	// Not mirrored into slices: the server writes the kubernetes Service's slice itself.
	wantLabels := map[string]string{discoveryv1.LabelSkipMirror: "true"}
	ep, err := c.CoreV1().Endpoints(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		ep = &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: wantLabels}, Subsets: want}
		if _, err := c.CoreV1().Endpoints(metav1.NamespaceDefault).Create(ctx, ep, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	case err != nil:
		return err
	case !reflect.DeepEqual(ep.Subsets, want) || ep.Labels[discoveryv1.LabelSkipMirror] != "true":
		// Other labels stay, as upstream's reconciler leaves them.
		ep.Subsets = want
		if ep.Labels == nil {
			ep.Labels = map[string]string{}
		}
		ep.Labels[discoveryv1.LabelSkipMirror] = "true"
		if _, err := c.CoreV1().Endpoints(metav1.NamespaceDefault).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	ready := true
	name, proto := "https", corev1.ProtocolTCP
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{s.opts.AdvertiseAddress}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}
	cur, err := c.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := c.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	case err != nil:
		return err
	case !reflect.DeepEqual(cur.Endpoints, slice.Endpoints) || !reflect.DeepEqual(cur.Ports, slice.Ports) || !reflect.DeepEqual(cur.Labels, slice.Labels):
		cur.Endpoints, cur.Ports, cur.Labels = slice.Endpoints, slice.Ports, slice.Labels
		if _, err := c.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}
