package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keelson/keelson/kubelet/containerd/containerdtest"
	"github.com/keelson/keelson/kubelet/images/build"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The same files in any order give the same archive, byte for byte.
func TestWriteArchiveIsReproducible(t *testing.T) {
	files := []build.File{
		{Path: "bin", Mode: fs.ModeDir | 0o755},
		{Path: "bin/tool", Mode: 0o755, Data: []byte("#!/bin/sh\n")},
		{Path: "bin/alias", Mode: fs.ModeSymlink | 0o777, Target: "tool"},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
	reversed := make([]build.File, len(files))
	for i, f := range files {
		reversed[len(files)-1-i] = f
	}
	img := build.Image{Names: []string{"example.com/a:1", "example.com/a:latest"}, OS: "linux", Architecture: "amd64",
		Config: ocispec.ImageConfig{Cmd: []string{"tool"}}, Files: files}
	var a, b bytes.Buffer
	wa, err := build.WriteArchive(&a, img)
	if err != nil {
		t.Fatal(err)
	}
	img.Files = reversed
	wb, err := build.WriteArchive(&b, img)
	if err != nil {
		t.Fatal(err)
	}
	if wa != wb || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("archives differ: %+v vs %+v", wa, wb)
	}
	layout := readLayout(t, a.Bytes())
	if len(layout.index.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want one per name", len(layout.index.Manifests))
	}
	for i, want := range [][2]string{{"example.com/a:1", "1"}, {"example.com/a:latest", "latest"}} {
		m := layout.index.Manifests[i]
		if m.Annotations["io.containerd.image.name"] != want[0] || m.Annotations[ocispec.AnnotationRefName] != want[1] {
			t.Errorf("manifest %d annotations = %v, want name %s and ref %s", i, m.Annotations, want[0], want[1])
		}
		if string(m.Digest) != wa.Manifest {
			t.Errorf("manifest %d digest = %s, want %s", i, m.Digest, wa.Manifest)
		}
	}
	if got := layout.layerNames; strings.Join(got, " ") != "bin/ bin/alias bin/tool tmp/" {
		t.Errorf("layer entries = %v, want sorted", got)
	}
}

// Building twice from the same binaries gives the same archives, and they hold what the images
// need: the pause program alone, and busybox with its applets, passwd and group.
func TestBuildIsReproducible(t *testing.T) {
	if _, err := os.Stat(build.DefaultBusybox); err != nil {
		containerdtest.RequireNode(t) // installs busybox-static, as root
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs Go to build the pause program")
	}
	ctx := context.Background()
	first, second := t.TempDir(), t.TempDir()
	a, err := build.Build(ctx, build.Options{Dir: first}) // builds the pause program itself
	if err != nil {
		t.Fatal(err)
	}
	b, err := build.Build(ctx, build.Options{Dir: second})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 || len(b) != 2 {
		t.Fatalf("built %d and %d archives, want 2", len(a), len(b))
	}
	for i := range a {
		if a[i].Written != b[i].Written {
			t.Errorf("%s: digests differ between builds: %+v vs %+v", filepath.Base(a[i].Path), a[i].Written, b[i].Written)
		}
		da, _ := os.ReadFile(a[i].Path)
		db, _ := os.ReadFile(b[i].Path)
		if !bytes.Equal(da, db) {
			t.Errorf("%s: archives differ between builds", filepath.Base(a[i].Path))
		}
	}

	pause := readLayout(t, mustRead(t, filepath.Join(first, "pause.tar")))
	if strings.Join(pause.layerNames, " ") != "pause" {
		t.Errorf("pause layer holds %v, want the pause program alone", pause.layerNames)
	}
	if pause.config.Config.Entrypoint[0] != "/pause" || pause.config.Architecture == "" || pause.config.OS != "linux" {
		t.Errorf("pause config = %+v", pause.config)
	}
	if got := pause.index.Manifests[0].Annotations["io.containerd.image.name"]; got != build.PauseImage {
		t.Errorf("pause image name = %q", got)
	}

	busybox := readLayout(t, mustRead(t, filepath.Join(first, "busybox.tar")))
	have := map[string]bool{}
	for _, n := range busybox.layerNames {
		have[n] = true
	}
	for _, want := range []string{"bin/busybox", "bin/sh", "bin/ls", "bin/echo", "etc/passwd", "etc/group", "tmp/"} {
		if !have[want] {
			t.Errorf("busybox layer lacks %s", want)
		}
	}
	if have["etc/hosts"] {
		t.Error("busybox layer has /etc/hosts")
	}
	if strings.Join(busybox.config.Config.Cmd, " ") != "sh" || !strings.HasPrefix(busybox.config.Config.Env[0], "PATH=") {
		t.Errorf("busybox config = %+v", busybox.config.Config)
	}
	if len(busybox.index.Manifests) != len(build.BusyboxNames) {
		t.Errorf("busybox index has %d names, want %d", len(busybox.index.Manifests), len(build.BusyboxNames))
	}
}

type layout struct {
	index      ocispec.Index
	config     ocispec.Image
	layerNames []string
}

// readLayout reads an OCI layout tar the way an importer would: index.json, then the manifest, the
// config and the layer it names, checking the layer's diff ID.
func readLayout(t *testing.T, archive []byte) layout {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = data
	}
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %q", files["oci-layout"])
	}
	blob := func(d string) []byte {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")]
		if !ok {
			t.Fatalf("blob %s missing", d)
		}
		return b
	}
	var l layout
	if err := json.Unmarshal(files["index.json"], &l.index); err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(blob(string(l.index.Manifests[0].Digest)), &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(blob(string(m.Config.Digest)), &l.config); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(string(m.Layers[0].Digest))))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(raw); len(l.config.RootFS.DiffIDs) != 1 || l.config.RootFS.DiffIDs[0] != got {
		t.Errorf("config diff IDs = %v, the layer's is %s", l.config.RootFS.DiffIDs, got)
	}
	lr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(h.ModTime.Truncate(0)) || h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: time %v owner %d:%d, want fixed", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		l.layerNames = append(l.layerNames, h.Name)
	}
	return l
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
