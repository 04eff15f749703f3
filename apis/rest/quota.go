package rest

import (
	"context"

	"github.com/keelson/keelson/apis/admission/resourcequota"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// quotaStorage gives the quota admission the server's own ResourceQuota storage: it lists from
// the watch cache and charges with a compare-and-swap on etcd.
type quotaStorage struct{ a *API }

var _ resourcequota.Quotas = quotaStorage{}

func (q quotaStorage) storage() *storage {
	return q.a.storageFor(schema.GroupResource{Resource: "resourcequotas"})
}

func (q quotaStorage) List(_ context.Context, namespace string) ([]*corev1.ResourceQuota, error) {
	s := q.storage()
	objs, _ := s.cache.List(s.store.NamespacePrefix(namespace))
	out := make([]*corev1.ResourceQuota, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*corev1.ResourceQuota))
	}
	return out, nil
}

func (q quotaStorage) Update(ctx context.Context, namespace, name string, charge func(*corev1.ResourceQuota) (bool, error)) error {
	s := q.storage()
	key := s.store.Key(namespace, name)
	_, err := s.store.Update(ctx, key, s.cached(key), func(current runtime.Object) (runtime.Object, error) {
		rq := current.(*corev1.ResourceQuota)
		changed, err := charge(rq)
		if err != nil {
			return nil, err
		}
		if !changed {
			return nil, errNoWrite
		}
		return rq, nil
	})
	return err
}
