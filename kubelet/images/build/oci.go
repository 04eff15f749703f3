package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// epoch is the modification time of every file in the layers and archives we write, so that the same
// inputs always give the same bytes and digests.
var epoch = time.Unix(0, 0).UTC()

// File is one entry of an image's root filesystem.
type File struct {
	// Path is relative to the root, without a leading slash ("bin/sh").
	Path string
	// Mode holds the permission bits and the type: fs.ModeDir, fs.ModeSymlink, or none for a regular
	// file. fs.ModeSticky is kept.
	Mode fs.FileMode
	// Data is a regular file's content.
	Data []byte
	// Target is a symlink's target.
	Target string
}

// Image is a single-layer image for one platform.
type Image struct {
	// Names are full references ("registry.k8s.io/pause:3.10.2"); the archive tags the image with
	// each of them.
	Names []string
	// OS and Architecture are the platform (e.g. linux, amd64).
	OS, Architecture string
	// Config is the image's run configuration (Entrypoint, Cmd, Env, User, WorkingDir).
	Config ocispec.ImageConfig
	// Files make up the only layer, in any order.
	Files []File
}

// Written is what WriteArchive wrote.
type Written struct {
	// Manifest is the digest of the image manifest ("sha256:..."), the image's digest.
	Manifest string
	// Config is the digest of the image config, the image ID the CRI reports.
	Config string
}

// The OCI annotation containerd reads an image's name from; the OCI one holds the tag alone.
const annotationImageName = "io.containerd.image.name"

// WriteArchive writes img as an OCI image layout in a tar stream: oci-layout, index.json (one entry
// per name, annotated with io.containerd.image.name and org.opencontainers.image.ref.name) and
// blobs/sha256/ with the manifest, the config and one gzipped layer. The output depends only on
// img: entries are sorted and carry fixed times and owners.
func WriteArchive(w io.Writer, img Image) (Written, error) {
	if len(img.Names) == 0 {
		return Written{}, fmt.Errorf("image has no name")
	}
	layer, diffID, err := layerTarGz(img.Files)
	if err != nil {
		return Written{}, err
	}
	layerDesc := descriptorOf(ocispec.MediaTypeImageLayerGzip, layer)

	config, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: img.OS, Architecture: img.Architecture},
		Config:   img.Config,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.Digest(diffID)}},
		History:  []ocispec.History{{Created: &epoch, CreatedBy: "keelson images build"}},
	})
	if err != nil {
		return Written{}, err
	}
	configDesc := descriptorOf(ocispec.MediaTypeImageConfig, config)

	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return Written{}, err
	}
	manifestDesc := descriptorOf(ocispec.MediaTypeImageManifest, manifest)
	manifestDesc.Platform = &ocispec.Platform{OS: img.OS, Architecture: img.Architecture}

	index := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, name := range img.Names {
		tag, err := tagOf(name)
		if err != nil {
			return Written{}, err
		}
		d := manifestDesc
		d.Annotations = map[string]string{annotationImageName: name, ocispec.AnnotationRefName: tag}
		index.Manifests = append(index.Manifests, d)
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return Written{}, err
	}
	layout, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return Written{}, err
	}

	blobs := map[string][]byte{}
	for _, b := range [][]byte{layer, config, manifest} {
		blobs["blobs/sha256/"+digest.FromBytes(b).Encoded()] = b
	}
	files := []File{
		{Path: ocispec.ImageLayoutFile, Mode: 0o644, Data: layout},
		{Path: ocispec.ImageIndexFile, Mode: 0o644, Data: indexJSON},
		{Path: "blobs", Mode: fs.ModeDir | 0o755},
		{Path: "blobs/sha256", Mode: fs.ModeDir | 0o755},
	}
	for p, b := range blobs {
		files = append(files, File{Path: p, Mode: 0o644, Data: b})
	}
	if err := writeTar(w, files); err != nil {
		return Written{}, err
	}
	return Written{Manifest: string(manifestDesc.Digest), Config: string(configDesc.Digest)}, nil
}

// layerTarGz returns the gzipped layer tar of files and the digest of the uncompressed tar (the
// diff ID).
func layerTarGz(files []File) ([]byte, string, error) {
	var raw bytes.Buffer
	if err := writeTar(&raw, files); err != nil {
		return nil, "", err
	}
	diffID := digest.FromBytes(raw.Bytes()).String()
	var gz bytes.Buffer
	// A zero gzip header (no name, no time) keeps the compressed bytes a function of the content.
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

// writeTar writes files sorted by path (so parents come before their children) with fixed times and
// root ownership.
func writeTar(w io.Writer, files []File) error {
	sorted := make([]File, len(files))
	copy(sorted, files)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	tw := tar.NewWriter(w)
	for i, f := range sorted {
		if f.Path == "" || strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path {
			return fmt.Errorf("bad path %q in image", f.Path)
		}
		if i > 0 && sorted[i-1].Path == f.Path {
			return fmt.Errorf("path %q twice in image", f.Path)
		}
		hdr := &tar.Header{
			Name:    f.Path,
			Mode:    int64(f.Mode.Perm()),
			ModTime: epoch,
			Format:  tar.FormatPAX,
		}
		if f.Mode&fs.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		switch {
		case f.Mode.IsDir():
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case f.Mode&fs.ModeSymlink != 0:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = f.Target
		case f.Mode.IsRegular():
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.Data))
		default:
			return fmt.Errorf("%s: unsupported file mode %v", f.Path, f.Mode)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

// tagOf is the tag of a reference "host/repo:tag" (the OCI ref.name annotation's value). A
// reference without a tag is refused: images are always named with one here.
func tagOf(name string) (string, error) {
	i := strings.LastIndex(name, ":")
	if i < 0 || strings.Contains(name[i+1:], "/") || strings.Contains(name, "@") {
		return "", fmt.Errorf("image name %q has no tag", name)
	}
	return name[i+1:], nil
}

func descriptorOf(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}
