package manager

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

func metaFor(opts Options) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: opts.LeaseName, Namespace: opts.LeaseNamespace}
}
