package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/agent"
	"github.com/keelson/keelson/clusterdns"
	"github.com/keelson/keelson/conformance/cluster"
	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestBootstrap joins a node by token against a real server: the bootstrap only, no node agent
// runs (containerd and nftables on the host belong to others).
func TestBootstrap(t *testing.T) {
	c, err := cluster.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := c.Clientset()

	if c.Keelson {
		// keelson server made its join token at start, and says how to join with it.
		b, err := os.ReadFile(filepath.Join(c.DataDir, "token"))
		if err != nil {
			t.Fatal(err)
		}
		token := strings.TrimSpace(string(b))
		if fi, _ := os.Stat(filepath.Join(c.DataDir, "token")); fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
		}
		if !strings.Contains(c.Log(), "keelson agent --server ") || !strings.Contains(c.Log(), "--token "+token) {
			t.Errorf("server did not print the join command:\n%s", c.Log())
		}
		id, _, _ := strings.Cut(token, ".")
		s, err := admin.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+id, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Type != "bootstrap.kubernetes.io/token" || string(s.Data["description"]) != agent.JoinTokenDescription ||
			string(s.Data["usage-bootstrap-authentication"]) != "true" || string(s.Data["usage-bootstrap-signing"]) != "true" || s.Data["expiration"] != nil {
			t.Errorf("join token secret: %v %v", s.Type, s.Data)
		}
	}

	// A token of our own, as `keelson server` makes it.
	serverDir := t.TempDir()
	token, err := agent.EnsureJoinToken(ctx, admin, serverDir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := agent.EnsureJoinToken(ctx, admin, serverDir)
	if err != nil || again != token {
		t.Fatalf("second EnsureJoinToken: %q, %v; want %q", again, err, token)
	}
	caHash, err := agent.CACertHashPEM(c.Config.CAData)
	if err != nil {
		t.Fatal(err)
	}
	server := c.Config.Host
	id, _, _ := strings.Cut(token, ".")

	t.Run("wrong CA pin", func(t *testing.T) {
		_, err := agent.Bootstrap(ctx, server, token, "sha256:"+strings.Repeat("0", 64), t.TempDir(), "pinned", nil)
		if err == nil || !strings.Contains(err.Error(), "none of the public keys") {
			t.Fatalf("want a pin mismatch, got %v", err)
		}
	})
	t.Run("wrong token secret", func(t *testing.T) {
		_, err := agent.Bootstrap(ctx, server, id+".0000000000000000", caHash, t.TempDir(), "wrong", nil)
		if err == nil || !strings.Contains(err.Error(), "failed to verify JWS signature") {
			t.Fatalf("want a signature failure, got %v", err)
		}
	})

	nodeDir := t.TempDir()
	nodeName := "join-test-" + id
	cfg, err := agent.Bootstrap(ctx, server, token, caHash, nodeDir, nodeName, nil)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(agent.KubeletKubeconfig(nodeDir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	node := kubernetes.NewForConfigOrDie(cfg)
	who, err := node.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if who.Status.UserInfo.Username != "system:node:"+nodeName || !contains(who.Status.UserInfo.Groups, "system:nodes") {
		t.Errorf("node credentials authenticate as %+v", who.Status.UserInfo)
	}

	// The CSR was the bootstrapper's, auto-approved as upstream's approver words it.
	csrs, err := admin.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mine []certificatesv1.CertificateSigningRequest
	for _, csr := range csrs.Items {
		if csr.Spec.Username == "system:bootstrap:"+id {
			mine = append(mine, csr)
		}
	}
	if len(mine) != 1 {
		t.Fatalf("want one CSR by system:bootstrap:%s, got %d", id, len(mine))
	}
	csr := mine[0]
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || !strings.HasPrefix(csr.Name, "node-csr-") {
		t.Errorf("csr %s signer %s", csr.Name, csr.Spec.SignerName)
	}
	approved := false
	for _, cond := range csr.Status.Conditions {
		if cond.Type == certificatesv1.CertificateApproved && cond.Reason == "AutoApproved" &&
			cond.Message == "Auto approving kubelet client certificate after SubjectAccessReview." {
			approved = true
		}
	}
	if !approved {
		t.Errorf("csr conditions %+v", csr.Status.Conditions)
	}

	// The node's credentials do what a kubelet does, and no more.
	_, err = node.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.CoreV1().Nodes().Delete(context.Background(), nodeName, metav1.DeleteOptions{}) }()
	if _, err := node.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
		t.Error(err)
	}
	_, err = node.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "join-test-forbidden"}}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("namespace create as a node: %v", err)
	}

	// What the agent's kubelet, proxy and cluster DNS read and write, as the node.
	if c.Keelson {
		if err := clusterdns.EnsureService(ctx, node, "10.96.0.0/12", nodeName, "192.0.2.10"); err != nil {
			t.Errorf("cluster DNS service as the node: %v", err)
		}
		if err := clusterdns.EnsureService(ctx, node, "10.96.0.0/12", nodeName, "192.0.2.11"); err != nil {
			t.Errorf("cluster DNS service updated as the node: %v", err)
		}
	}
	for what, list := range map[string]func() error{
		"pods on the node": func() error {
			_, err := node.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
			return err
		},
		"services":   func() error { _, err := node.CoreV1().Services("").List(ctx, metav1.ListOptions{}); return err },
		"configmaps": func() error { _, err := node.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); return err },
		"secrets":    func() error { _, err := node.CoreV1().Secrets("").List(ctx, metav1.ListOptions{}); return err },
		"slices": func() error {
			_, err := node.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
			return err
		},
		"nodes":      func() error { _, err := node.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); return err },
		"namespaces": func() error { _, err := node.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); return err },
	} {
		if err := list(); err != nil {
			t.Errorf("listing %s as the node: %v", what, err)
		}
	}

	// A later start reuses the credentials: no second CSR, even without a usable token.
	if _, err := agent.Bootstrap(ctx, server, "", caHash, nodeDir, nodeName, nil); err != nil {
		t.Fatal(err)
	}
	csrs, err = admin.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, csr := range csrs.Items {
		if csr.Spec.Username == "system:bootstrap:"+id {
			n++
		}
	}
	if n != 1 {
		t.Errorf("a restart made %d CSRs, want none", n-1)
	}

	// A revoked join token is replaced at the server's next start, its signature dropped.
	if err := admin.CoreV1().Secrets("kube-system").Delete(ctx, "bootstrap-token-"+id, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	renewed, err := agent.EnsureJoinToken(ctx, admin, serverDir)
	if err != nil {
		t.Fatal(err)
	}
	if renewed == token {
		t.Errorf("a revoked join token was kept")
	}
	if b, _ := os.ReadFile(filepath.Join(serverDir, "token")); strings.TrimSpace(string(b)) != renewed {
		t.Errorf("token file holds %q, want %q", b, renewed)
	}
	info, err := admin.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newID, _, _ := strings.Cut(renewed, ".")
	if _, ok := info.Data["jws-kubeconfig-"+id]; ok {
		t.Errorf("cluster-info keeps the signature of revoked token %s", id)
	}
	if _, ok := info.Data["jws-kubeconfig-"+newID]; !ok {
		t.Errorf("cluster-info lacks the signature of token %s", newID)
	}

	// Without a pin, the CA is trusted on first use (the signature still proves the server
	// knows the token).
	if _, err := agent.Bootstrap(ctx, server, renewed, "", t.TempDir(), nodeName+"-tofu", nil); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
