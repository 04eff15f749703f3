package manager

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// PodsByNode is the name of the pod informer index by spec.nodeName.
const PodsByNode = "spec.nodeName"

// IndexPodsByNode adds the PodsByNode index to the shared pod informer once, however many
// controllers ask, and returns the informer's indexer.
func IndexPodsByNode(c *Context) (cache.Indexer, error) {
	inf := c.Informers.Core().V1().Pods().Informer()
	if _, exists := inf.GetIndexer().GetIndexers()[PodsByNode]; !exists {
		if err := inf.AddIndexers(cache.Indexers{PodsByNode: func(o any) ([]string, error) {
			if p, ok := o.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		}}); err != nil {
			return nil, err
		}
	}
	return inf.GetIndexer(), nil
}
