package agent

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keelson/keelson/clusterdns"
)

// leave withdraws what only this running node serves: its endpoints of the cluster DNS
// Service, so that no query goes to a node whose DNS server stopped. The next start writes
// them again.
func leave(client kubernetes.Interface, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	slices := client.DiscoveryV1().EndpointSlices(clusterdns.ServiceNamespace)
	for _, name := range []string{clusterdns.ServiceName + "-" + node, clusterdns.ServiceName + "-" + node + "-ipv6"} {
		if err := slices.Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return
		}
	}
}
