package kubelet

import (
	"github.com/keelson/keelson/pki"
	"net"
	"path/filepath"
	"strconv"

	"github.com/keelson/keelson/kubelet/server"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// listenAPI opens the kubelet API's port, or returns nil when the kubelet serves no API.
func (k *Kubelet) listenAPI() (net.Listener, error) {
	if len(k.opts.ClientCA) == 0 {
		return nil, nil
	}
	port := k.opts.Port
	switch port {
	case 0:
		port = kubeletPort
	case -1:
		port = 0
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	k.apiPort = ln.Addr().(*net.TCPAddr).Port
	return ln, nil
}

// apiServer is the kubelet's HTTPS API over the pods this kubelet runs.
func (k *Kubelet) apiServer() (*server.Server, error) {
	cert := k.opts.ServingCertificate
	if cert == nil {
		c, err := pki.SelfSigned(filepath.Join(k.opts.RootDir, "pki"), "kubelet.crt", "kubelet.key", k.opts.NodeName, []net.IP{k.opts.NodeIP})
		if err != nil {
			return nil, err
		}
		cert = &c
	}
	return server.New(server.Config{
		Certificate: *cert,
		ClientCA:    k.opts.ClientCA,
		Runtime:     k.runtime,
		Log:         k.log,
		Pods: func() []*corev1.Pod {
			pods, _ := k.pods.List(labels.Everything())
			return pods
		},
	})
}
