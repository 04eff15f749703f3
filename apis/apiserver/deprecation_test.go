package apiserver_test

import (
	"context"
	"sync"
	"testing"

	"github.com/keelson/keelson/apis/apiserver"
	"github.com/keelson/keelson/apis/apiserver/apiservertest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// warnings collects the warnings a client receives.
type warnings struct {
	mu   sync.Mutex // guards seen
	seen []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// Every request for a kind k8s.io/api marks deprecated by v1.37 carries upstream's warning.
func TestDeprecatedAPIsWarn(t *testing.T) {
	cfg := apiservertest.Start(t, apiserver.Options{})
	w := &warnings{}
	cfg.WarningHandler = w
	c := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	cases := []struct {
		name string
		call func() error
		want []string
	}{
		{"endpoints get", func() error {
			_, err := c.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			return err
		}, []string{"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"}},
		{"endpoints list", func() error {
			_, err := c.CoreV1().Endpoints("").List(ctx, metav1.ListOptions{})
			return err
		}, []string{"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"}},
		{"component statuses", func() error {
			_, err := c.CoreV1().ComponentStatuses().List(ctx, metav1.ListOptions{})
			return err
		}, []string{"v1 ComponentStatus is deprecated in v1.19+"}},
		{"endpoint slices", func() error {
			_, err := c.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
			return err
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err != nil {
				t.Fatal(err)
			}
			got := w.take()
			if len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
				t.Errorf("warnings %q, want %q", got, tc.want)
			}
		})
	}
}
