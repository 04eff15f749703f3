package scheduler

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The image locality score's bounds, upstream's: below 23MB in all an image makes no
// difference; above 1000MB per container it makes no more.
const (
	imageMinThreshold          = 23 * 1024 * 1024
	imageMaxContainerThreshold = 1000 * 1024 * 1024
)

// imageLocality scores a node by the sizes of the pod's images it already has (images, by
// normalized name), each weighed by the share of nodes that have it (so that a pod is not
// drawn to one node by an image all nodes have), scaled to 0..100 between upstream's
// thresholds.
func imageLocality(pod *corev1.Pod, images map[string]int64, nodesWithImage map[string]int, allNodes int) int64 {
	var sum int64
	containers := 0
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			containers++
			name := normalizedImageName(c.Image)
			if size, ok := images[name]; ok && allNodes > 0 {
				sum += int64(float64(size) * float64(nodesWithImage[name]) / float64(allNodes))
			}
		}
	}
	maxThreshold := int64(imageMaxContainerThreshold) * int64(max(containers, 1))
	sum = min(max(sum, imageMinThreshold), maxThreshold)
	return maxNodeScore * (sum - imageMinThreshold) / (maxThreshold - imageMinThreshold)
}

// normalizedImageName is an image reference in the full form nodes report: with a registry,
// and the tag latest when it has neither tag nor digest.
func normalizedImageName(name string) string {
	if i := strings.LastIndex(name, "/"); !strings.Contains(name[i+1:], ":") && !strings.Contains(name, "@") {
		name += ":latest"
	}
	first, _, found := strings.Cut(name, "/")
	switch {
	case !found:
		return "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		return "docker.io/" + name
	}
	return name
}

// imagesOf is the sizes of the images a node reports, by normalized name.
func imagesOf(node *corev1.Node) map[string]int64 {
	sizes := map[string]int64{}
	for _, img := range node.Status.Images {
		for _, name := range img.Names {
			sizes[normalizedImageName(name)] = img.SizeBytes
		}
	}
	return sizes
}
