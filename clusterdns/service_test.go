package clusterdns_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/keelson/keelson/clusterdns"
)

func TestServiceIP(t *testing.T) {
	for _, tc := range []struct {
		name, cidr, want string
	}{
		{"the default range", "10.96.0.0/12", "10.96.0.10"},
		{"a range given by an inner address", "10.100.3.4/12", "10.96.0.10"},
		{"a dual-stack pair takes the first", "10.43.0.0/16,fd00:43::/112", "10.43.0.10"},
		{"IPv6", "fd00:10:96::/112", "fd00:10:96::a"},
		{"too small", "10.0.0.0/29", ""},
		{"not a range", "10.96.0.0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip, err := clusterdns.ServiceIP(tc.cidr)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("got %s, want an error", ip)
				}
				return
			}
			if err != nil || ip.String() != tc.want {
				t.Fatalf("got %v, %v; want %s", ip, err, tc.want)
			}
		})
	}
}

func TestUpstreams(t *testing.T) {
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("search example.com\nnameserver 127.0.0.1\nnameserver 10.0.0.2\nnameserver ::1\noptions ndots:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		upstream []string
		self     string
		want     []string
	}{
		{"the host's resolvers", nil, "10.254.254.1:53", []string{"127.0.0.1:53", "10.0.0.2:53", "[::1]:53"}},
		{"the host's resolvers without this server", nil, "127.0.0.1:53", []string{"10.0.0.2:53", "[::1]:53"}},
		{"this server on every address is any loopback resolver", nil, "0.0.0.0:53", []string{"10.0.0.2:53"}},
		{"the host's resolvers on another port", nil, "127.0.0.1:5353", []string{"127.0.0.1:53", "10.0.0.2:53", "[::1]:53"}},
		{"given resolvers get port 53", []string{"192.0.2.1", "192.0.2.2:5353", "2001:db8::1"}, "127.0.0.1:53", []string{"192.0.2.1:53", "192.0.2.2:5353", "[2001:db8::1]:53"}},
		{"given resolvers without this server", []string{"10.254.254.1", "192.0.2.1"}, "10.254.254.1:53", []string{"192.0.2.1:53"}},
		{"a name is refused", []string{"dns.example"}, "127.0.0.1:53", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := clusterdns.UpstreamsFor(clusterdns.Options{Upstream: tc.upstream, ResolvConf: resolvConf}, tc.self)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestEnsureService checks the kube-dns Service and its EndpointSlices against upstream's shape
// (kubeadm's CoreDNS addon Service), and that cluster DNS answers for it.
func TestEnsureService(t *testing.T) {
	ctx := context.Background()
	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "dns-node-a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })

	if err := clusterdns.EnsureService(ctx, client, "10.96.0.0/12", node.Name, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	svc, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
	if !maps.Equal(svc.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", svc.Labels, wantLabels)
	}
	if want := map[string]string{"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}; !maps.Equal(svc.Annotations, want) {
		t.Errorf("annotations %v, want %v", svc.Annotations, want)
	}
	if svc.Spec.ClusterIP != "10.96.0.10" || !slices.Equal(svc.Spec.ClusterIPs, []string{"10.96.0.10"}) || svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Selector != nil {
		t.Errorf("spec %+v, want a ClusterIP Service at 10.96.0.10 without a selector", svc.Spec)
	}
	wantPorts := []corev1.ServicePort{
		{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
		{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
		{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
	}
	if !slices.Equal(svc.Spec.Ports, wantPorts) {
		t.Errorf("ports %+v, want %+v", svc.Spec.Ports, wantPorts)
	}

	slice, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-dns-node-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if slice.Labels[discoveryv1.LabelServiceName] != "kube-dns" || slice.Labels[discoveryv1.LabelManagedBy] != clusterdns.ManagedBy {
		t.Errorf("slice labels %v", slice.Labels)
	}
	if len(slice.OwnerReferences) != 1 || slice.OwnerReferences[0].Kind != "Node" || slice.OwnerReferences[0].UID != node.UID {
		t.Errorf("slice owners %+v, want the Node", slice.OwnerReferences)
	}
	if slice.AddressType != discoveryv1.AddressTypeIPv4 || len(slice.Endpoints) != 1 ||
		!slices.Equal(slice.Endpoints[0].Addresses, []string{"127.0.0.1"}) || !ptr.Deref(slice.Endpoints[0].Conditions.Ready, false) ||
		ptr.Deref(slice.Endpoints[0].NodeName, "") != node.Name || len(slice.Ports) != 3 {
		t.Errorf("slice %+v, want one ready endpoint at 127.0.0.1 on the node with three ports", slice)
	}

	t.Run("is idempotent", func(t *testing.T) {
		if err := clusterdns.EnsureService(ctx, client, "10.96.0.0/12", node.Name, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		svc2, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		slice2, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, slice.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if svc2.ResourceVersion != svc.ResourceVersion || slice2.ResourceVersion != slice.ResourceVersion {
			t.Errorf("a second call wrote: Service %s→%s, slice %s→%s", svc.ResourceVersion, svc2.ResourceVersion, slice.ResourceVersion, slice2.ResourceVersion)
		}
	})

	t.Run("restores a changed Service", func(t *testing.T) {
		changed := svc.DeepCopy()
		delete(changed.Labels, "k8s-app")
		changed.Spec.Ports = changed.Spec.Ports[:1]
		if _, err := client.CoreV1().Services("kube-system").Update(ctx, changed, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := clusterdns.EnsureService(ctx, client, "10.96.0.0/12", node.Name, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		svc2, err := client.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(svc2.Labels, wantLabels) || !slices.Equal(svc2.Spec.Ports, wantPorts) {
			t.Errorf("not restored: labels %v, ports %+v", svc2.Labels, svc2.Spec.Ports)
		}
	})

	t.Run("follows the node's addresses", func(t *testing.T) {
		if err := clusterdns.EnsureService(ctx, client, "10.96.0.0/12", node.Name, "127.0.0.2", "::1"); err != nil {
			t.Fatal(err)
		}
		v4, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-dns-node-a", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v6, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-dns-node-a-ipv6", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v4.Endpoints[0].Addresses, []string{"127.0.0.2"}) || v6.AddressType != discoveryv1.AddressTypeIPv6 || !slices.Equal(v6.Endpoints[0].Addresses, []string{"::1"}) {
			t.Errorf("slices %v and %v", v4.Endpoints, v6.Endpoints)
		}
		if err := clusterdns.EnsureService(ctx, client, "10.96.0.0/12", node.Name, "127.0.0.1"); err != nil {
			t.Fatal(err)
		}
		if _, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-dns-node-a-ipv6", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the IPv6 slice of a node without IPv6 addresses: %v", err)
		}
	})

	t.Run("is answered for", func(t *testing.T) {
		eventually(t, func() error {
			return expect(query(t, dnsAddr, "udp", "kube-dns.kube-system.svc.cluster.local", dns.TypeA),
				"kube-dns.kube-system.svc.cluster.local. A 10.96.0.10")
		})
		eventually(t, func() error {
			return expect(query(t, dnsAddr, "udp", "_dns._udp.kube-dns.kube-system.svc.cluster.local", dns.TypeSRV),
				"_dns._udp.kube-dns.kube-system.svc.cluster.local. SRV 0 100 53 kube-dns.kube-system.svc.cluster.local.")
		})
	})
}

// TestNameServer checks the cluster domain's NS answer: a server listening on every address, one
// of which the kube-dns Service's endpoints name, names that Service and gives its address, as
// CoreDNS in a pod behind kube-dns does. (CoreDNS v1.15.0 finds its own addresses only when it
// is not bound to one: with a listen host, the NS answer is empty, from CoreDNS as from us.)
func TestNameServer(t *testing.T) {
	hostIP := globalIPv4(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := clusterdns.EnsureService(ctx, client, "10.96.0.0/12", "dns-node-b", hostIP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.DiscoveryV1().EndpointSlices("kube-system").Delete(context.Background(), "kube-dns-dns-node-b", metav1.DeleteOptions{})
	})
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- clusterdns.Run(ctx, testCluster.Config, clusterdns.Options{Listen: ":0", Upstream: []string{upstream.addr}, Ready: ready})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	addr = net.JoinHostPort(hostIP, port)
	// The kubernetes Service's endpoint is an address of this host too (the API server's), so it
	// is named as well; on a node of its own only kube-dns would be.
	eventually(t, func() error {
		r := query(t, addr, "udp", "cluster.local", dns.TypeNS)
		if got := records(r.Answer); !slices.Contains(got, "cluster.local. NS kube-dns.kube-system.svc.cluster.local.") {
			return fmt.Errorf("answer %q (%s), want the kube-dns Service named", got, dns.RcodeToString[r.Rcode])
		}
		if got := records(r.Extra); !slices.Contains(got, "kube-dns.kube-system.svc.cluster.local. A 10.96.0.10") {
			return fmt.Errorf("additional %q, want the kube-dns Service's address", got)
		}
		return nil
	})
	r := query(t, addr, "udp", "ns.dns.cluster.local", dns.TypeA)
	if got := records(r.Answer); !slices.Contains(got, "ns.dns.cluster.local. A 10.96.0.10") {
		t.Errorf("ns.dns.cluster.local: %q, want the kube-dns Service's address", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// globalIPv4 is an IPv4 address of this host that is not loopback.
func globalIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("this host has no global IPv4 address to bind")
	return ""
}
