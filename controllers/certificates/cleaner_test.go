package certificates

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	"github.com/keelson/keelson/controllers/manager"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// clock is a settable time for the cleaner.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// certificatePEM is a self-signed certificate valid until notAfter.
func certificatePEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c"}, NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func requestPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "someone"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// The cleaner deletes requests denied, failed or issued more than an hour ago, requests whose
// certificate has expired, and requests pending for more than a day; it keeps the rest.
func TestCleanerDeadlines(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := apiservertest.Start(t, apiserver.Options{})
	client := kubernetes.NewForConfigOrDie(cfg)
	csrs := client.CertificatesV1().CertificateSigningRequests()
	now := time.Now()
	old := metav1.NewTime(now.Add(-2 * time.Hour))
	recent := metav1.NewTime(now.Add(-time.Minute))

	type request struct {
		name      string
		condition certificatesv1.RequestConditionType // "" for none
		at        metav1.Time
		cert      []byte
		deleted   bool
	}
	requests := []request{
		{name: "pending"},
		{name: "denied-old", condition: certificatesv1.CertificateDenied, at: old, deleted: true},
		{name: "denied-recent", condition: certificatesv1.CertificateDenied, at: recent},
		{name: "failed-old", condition: certificatesv1.CertificateFailed, at: old, deleted: true},
		{name: "issued-old", condition: certificatesv1.CertificateApproved, at: old, cert: certificatePEM(t, now.Add(time.Hour)), deleted: true},
		{name: "issued-recent", condition: certificatesv1.CertificateApproved, at: recent, cert: certificatePEM(t, now.Add(time.Hour))},
		{name: "issued-expired", condition: certificatesv1.CertificateApproved, at: recent, cert: certificatePEM(t, now.Add(-time.Minute)), deleted: true},
		{name: "approved-unissued", condition: certificatesv1.CertificateApproved, at: old},
	}
	for _, r := range requests {
		csr, err := csrs.Create(ctx, &certificatesv1.CertificateSigningRequest{
			ObjectMeta: metav1.ObjectMeta{Name: r.name},
			Spec: certificatesv1.CertificateSigningRequestSpec{Request: requestPEM(t), SignerName: "example.com/none",
				Usages: []certificatesv1.KeyUsage{certificatesv1.UsageClientAuth}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.condition == "" {
			continue
		}
		csr.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{Type: r.condition, Status: corev1.ConditionTrue, Reason: "Test", LastUpdateTime: r.at}}
		if r.condition == certificatesv1.CertificateFailed {
			csr, err = csrs.UpdateStatus(ctx, csr, metav1.UpdateOptions{})
		} else {
			csr, err = csrs.UpdateApproval(ctx, r.name, csr, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.cert != nil {
			csr.Status.Certificate = r.cert
			if _, err := csrs.UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	clk := &clock{now: now}
	var cl *cleaner
	built := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		_ = manager.Run(ctx, cfg, manager.Options{LeaseName: "csrcleaner-test", Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))},
			func(c *manager.Context) ([]manager.Controller, error) {
				ctl, err := NewCleaner(c)
				if err != nil {
					return nil, err
				}
				cl = ctl.(*cleaner)
				cl.now = clk.Now
				close(built)
				return []manager.Controller{ctl}, nil
			})
	})
	<-built

	exists := func(name string) bool {
		_, err := csrs.Get(ctx, name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	waitGone := func(names ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for _, name := range names {
			for exists(name) {
				if time.Now().After(deadline) {
					t.Fatalf("request %s was not deleted", name)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	var gone, kept []string
	for _, r := range requests {
		if r.deleted {
			gone = append(gone, r.name)
		} else {
			kept = append(kept, r.name)
		}
	}
	waitGone(gone...)
	for _, name := range kept {
		if !exists(name) {
			t.Errorf("request %s was deleted", name)
		}
	}

	// A day on, the pending request goes too.
	clk.Set(now.Add(25 * time.Hour))
	cl.Enqueue(cleanKey)
	waitGone("pending")
}
