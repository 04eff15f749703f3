// Package images imports image archives into a node's containerd, where the CRI finds them: the
// air-gap way of getting images onto a node with no registry in reach (<data-dir>/agent/images/).
package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	ctrclient "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// Namespace is the containerd namespace the CRI plugin serves images and containers from.
	Namespace = "k8s.io"
	// Snapshotter is the snapshotter the CRI plugin runs containers on (the private containerd's).
	Snapshotter = "overlayfs"
	// criManagedLabel marks images as the CRI's own, as a pull through the CRI would.
	criManagedLabel = "io.cri-containerd.image"
)

// Import imports every *.tar in dir (OCI image layouts, or `docker save` archives) into the
// containerd at socket, in the k8s.io namespace, and unpacks them for the overlayfs snapshotter, so
// that the CRI lists them and can run them. Each named image also gets its repo@digest reference,
// as after a pull. An OCI archive whose images all exist already with the same digest, unpacked, is
// skipped without reading its blobs. Import returns the names of the images in the archives,
// sorted; a missing dir imports nothing.
func Import(ctx context.Context, socket, dir string) ([]string, error) {
	archives, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, err
	}
	if len(archives) == 0 {
		return nil, nil
	}
	sort.Strings(archives)
	client, err := ctrclient.New(socket, ctrclient.WithDefaultNamespace(Namespace))
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	defer func() { _ = client.Close() }()

	seen := map[string]bool{}
	var names []string
	for _, archive := range archives {
		got, err := importArchive(ctx, client, archive)
		if err != nil {
			return nil, fmt.Errorf("images: importing %s: %w", archive, err)
		}
		for _, n := range got {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

func importArchive(ctx context.Context, client *ctrclient.Client, archive string) ([]string, error) {
	if names, ok := upToDate(ctx, client, archive); ok {
		return names, nil
	}
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	imported, err := client.Import(ctx, f,
		ctrclient.WithImageLabels(map[string]string{criManagedLabel: "managed"}),
		ctrclient.WithSkipDigestRef(func(string) bool { return true }),
	)
	if err != nil {
		return nil, err
	}
	if len(imported) == 0 {
		return nil, errors.New("the archive names no image")
	}
	var names []string
	for _, img := range imported {
		image := ctrclient.NewImageWithPlatform(client, img, platforms.Default())
		unpacked, err := image.IsUnpacked(ctx, Snapshotter)
		if err != nil {
			return nil, err
		}
		if !unpacked {
			if err := image.Unpack(ctx, Snapshotter); err != nil {
				return nil, fmt.Errorf("unpacking %s: %w", img.Name, err)
			}
		}
		if err := ensureDigestRef(ctx, client, img); err != nil {
			return nil, err
		}
		names = append(names, img.Name)
	}
	return names, nil
}

// upToDate reports whether every image an OCI layout archive names exists already with the
// archive's manifest digest and is unpacked, reading only the archive's index.json. It answers
// false for docker archives, which carry no manifest digests.
func upToDate(ctx context.Context, client *ctrclient.Client, archive string) ([]string, bool) {
	index, err := readIndex(archive)
	if err != nil || len(index.Manifests) == 0 {
		return nil, false
	}
	var names []string
	for _, m := range index.Manifests {
		name := m.Annotations[images.AnnotationImageName]
		if name == "" {
			return nil, false
		}
		img, err := client.ImageService().Get(ctx, name)
		if err != nil || img.Target.Digest != m.Digest {
			return nil, false
		}
		unpacked, err := ctrclient.NewImageWithPlatform(client, img, platforms.Default()).IsUnpacked(ctx, Snapshotter)
		if err != nil || !unpacked {
			return nil, false
		}
		if err := ensureDigestRef(ctx, client, img); err != nil {
			return nil, false
		}
		names = append(names, name)
	}
	return names, true
}

// readIndex reads index.json from an OCI layout tar, skipping over the blobs.
func readIndex(archive string) (*ocispec.Index, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no index.json")
		}
		if err != nil {
			return nil, err
		}
		if path.Clean(strings.TrimPrefix(h.Name, "./")) != ocispec.ImageIndexFile {
			continue
		}
		var index ocispec.Index
		if err := json.NewDecoder(tr).Decode(&index); err != nil {
			return nil, fmt.Errorf("index.json: %w", err)
		}
		return &index, nil
	}
}

// ensureDigestRef gives a tagged image its repo@digest name, which the CRI reports as the image's
// repo digest (and the kubelet as a pod's imageID), as it does for pulled images.
func ensureDigestRef(ctx context.Context, client *ctrclient.Client, img images.Image) error {
	repo, ok := repository(img.Name)
	if !ok {
		return nil
	}
	ref := images.Image{Name: repo + "@" + img.Target.Digest.String(), Target: img.Target, Labels: img.Labels}
	is := client.ImageService()
	existing, err := is.Get(ctx, ref.Name)
	switch {
	case err == nil && existing.Target.Digest == ref.Target.Digest:
		return nil
	case err == nil:
		_, err = is.Update(ctx, ref, "target", "labels")
	case errdefs.IsNotFound(err):
		_, err = is.Create(ctx, ref)
		if errdefs.IsAlreadyExists(err) {
			err = nil
		}
	}
	return err
}

// repository is the name of a tagged reference without its tag ("docker.io/library/busybox" of
// "docker.io/library/busybox:1.37"); false for a digest reference or one without a tag.
func repository(name string) (string, bool) {
	if strings.Contains(name, "@") {
		return "", false
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i+1:], "/") {
		return "", false
	}
	return name[:i], true
}
