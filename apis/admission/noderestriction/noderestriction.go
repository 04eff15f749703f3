// Package noderestriction holds nodes to their own objects on creation, as upstream's
// NodeRestriction admission plugin does for what the authorizer cannot see in a create: a node
// (user system:node:<name> in system:nodes) may create only its own Node, and only mirror
// pods bound to itself. Writes to existing Nodes are held to the node's own name by apis/authz.
package noderestriction

import (
	"context"
	"fmt"

	"github.com/keelson/keelson/apis/authn"
	"github.com/keelson/keelson/apis/authz"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// BeforeCreateNode is the nodes' create hook.
func BeforeCreateNode(ctx context.Context, obj runtime.Object, _ bool) (func(), error) {
	node, ok := authz.NodeName(authn.UserFrom(ctx))
	n, isNode := obj.(*corev1.Node)
	if !ok || !isNode {
		return nil, nil
	}
	if n.Name != node {
		return nil, authz.NodeRestrictionError(node, n.Name)
	}
	return nil, nil
}

// BeforeCreatePod is the pods' create hook.
func BeforeCreatePod(ctx context.Context, obj runtime.Object, _ bool) (func(), error) {
	node, ok := authz.NodeName(authn.UserFrom(ctx))
	pod, isPod := obj.(*corev1.Pod)
	if !ok || !isPod {
		return nil, nil
	}
	forbidden := func(err error) (func(), error) {
		return nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, err)
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; !mirror {
		return forbidden(fmt.Errorf("pod does not have %q annotation, node %q can only create mirror pods", corev1.MirrorPodAnnotationKey, node))
	}
	if pod.Spec.NodeName != node {
		return forbidden(fmt.Errorf("node %q can only create pods with spec.nodeName set to itself", node))
	}
	return nil, nil
}
