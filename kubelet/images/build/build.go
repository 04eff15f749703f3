// Package build writes the image archives a node needs without a registry: a pause image holding
// keelson-pause and a busybox image from the host's static busybox, as OCI image layout tars in
// <data-dir>/agent/images/, which the node imports into containerd at start.
//
// The archives are reproducible: the same binaries give the same bytes and digests.
package build

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image names.
const (
	PauseImage = "registry.k8s.io/pause:3.10.2"
	// BusyboxImage is the busybox image's first name; BusyboxNames lists them all.
	BusyboxImage = "docker.io/library/busybox:latest"
)

// BusyboxNames are the names the busybox image is tagged with.
var BusyboxNames = []string{BusyboxImage, "docker.io/library/busybox:1.37"}

// Defaults for Options.
const (
	DefaultBusybox = "/bin/busybox"
	// PausePackage is the Go package of the pause program, built when no binary is given.
	PausePackage = "./cmd/keelson-pause"
	modulePath   = "github.com/keelson/keelson"
)

// pathEnv is the PATH of images with a shell, as in Docker's busybox image.
const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options say where the archives go and what they are made of.
type Options struct {
	// Dir receives the archives: pause.tar and busybox.tar. Required; e.g. <data-dir>/agent/images.
	Dir string
	// PauseBinary is the static pause program (cmd/keelson-pause). Empty: build it with `go build`
	// from the keelson source tree found above the working directory or the running executable.
	PauseBinary string
	// Busybox is a statically linked busybox (default /bin/busybox, Debian's busybox-static).
	Busybox string
	// Architecture is the images' architecture (default: this program's GOARCH).
	Architecture string
	// Log receives progress messages (default: discarded).
	Log *slog.Logger
}

// Archive is one archive Build wrote.
type Archive struct {
	// Path is the archive file.
	Path string
	// Names are the image's references.
	Names []string
	// Written holds the manifest and config digests.
	Written
}

// Build writes pause.tar and busybox.tar into opts.Dir, replacing what is there.
func Build(ctx context.Context, opts Options) ([]Archive, error) {
	if opts.Dir == "" {
		return nil, errors.New("images: Options.Dir is required")
	}
	if opts.Busybox == "" {
		opts.Busybox = DefaultBusybox
	}
	if opts.Architecture == "" {
		opts.Architecture = runtime.GOARCH
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	pauseBinary := opts.PauseBinary
	if pauseBinary == "" {
		src, err := findSource()
		if err != nil {
			return nil, fmt.Errorf("images: no --pause-binary given and %w", err)
		}
		tmp, err := os.MkdirTemp("", "keelson-pause-")
		if err != nil {
			return nil, err
		}
		defer func() { _ = os.RemoveAll(tmp) }()
		pauseBinary = filepath.Join(tmp, "keelson-pause")
		opts.Log.Info("building the pause program", "source", src)
		if err := BuildPause(ctx, src, pauseBinary); err != nil {
			return nil, err
		}
	}
	pause, err := PauseImageOf(pauseBinary, opts.Architecture)
	if err != nil {
		return nil, err
	}
	busybox, err := BusyboxImageOf(ctx, opts.Busybox, opts.Architecture)
	if err != nil {
		return nil, err
	}
	var out []Archive
	for _, a := range []struct {
		file string
		img  Image
	}{{"pause.tar", pause}, {"busybox.tar", busybox}} {
		p := filepath.Join(opts.Dir, a.file)
		w, err := writeArchiveFile(p, a.img)
		if err != nil {
			return nil, fmt.Errorf("images: writing %s: %w", p, err)
		}
		opts.Log.Info("wrote image archive", "path", p, "names", a.img.Names, "digest", w.Manifest)
		out = append(out, Archive{Path: p, Names: a.img.Names, Written: w})
	}
	return out, nil
}

// writeArchiveFile writes the archive next to path and renames it into place, so that an importer
// never reads half an archive.
func writeArchiveFile(path string, img Image) (Written, error) {
	var buf bytes.Buffer
	w, err := WriteArchive(&buf, img)
	if err != nil {
		return Written{}, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return Written{}, err
	}
	_, werr := f.Write(buf.Bytes())
	if err := errors.Join(werr, f.Close(), os.Chmod(f.Name(), 0o644)); err != nil {
		_ = os.Remove(f.Name())
		return Written{}, err
	}
	return w, os.Rename(f.Name(), path)
}

// PauseImageOf is the pause image: binary as /pause, its only file, run as 65535:65535 as upstream's.
func PauseImageOf(binary, arch string) (Image, error) {
	data, err := readStatic(binary)
	if err != nil {
		return Image{}, fmt.Errorf("images: pause binary: %w", err)
	}
	return Image{
		Names: []string{PauseImage}, OS: "linux", Architecture: arch,
		Config: ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535"},
		Files:  []File{{Path: "pause", Mode: 0o755, Data: data}},
	}, nil
}

// BusyboxImageOf is the busybox image: the static busybox as /bin/busybox with a symlink in /bin for
// each of its applets, /etc/passwd and /etc/group with root and nobody, and /tmp, /root, /home and
// /var. There is no /etc/hosts (the runtime mounts one). It runs sh.
func BusyboxImageOf(ctx context.Context, busybox, arch string) (Image, error) {
	data, err := readStatic(busybox)
	if err != nil {
		return Image{}, fmt.Errorf("images: busybox: %w", err)
	}
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return Image{}, fmt.Errorf("images: %s --list: %w", busybox, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)
	files := []File{
		{Path: "bin", Mode: fs.ModeDir | 0o755},
		{Path: "bin/busybox", Mode: 0o755, Data: data},
		{Path: "etc", Mode: fs.ModeDir | 0o755},
		{Path: "etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")},
		{Path: "etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnobody:x:65534:\n")},
		{Path: "home", Mode: fs.ModeDir | 0o755},
		{Path: "root", Mode: fs.ModeDir | 0o700},
		{Path: "tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "var", Mode: fs.ModeDir | 0o755},
	}
	seen := map[string]bool{"busybox": true}
	for _, a := range applets {
		if seen[a] || strings.Contains(a, "/") {
			continue
		}
		seen[a] = true
		files = append(files, File{Path: "bin/" + a, Mode: fs.ModeSymlink | 0o777, Target: "busybox"})
	}
	if !seen["sh"] {
		return Image{}, fmt.Errorf("images: %s has no sh applet", busybox)
	}
	return Image{
		Names: BusyboxNames, OS: "linux", Architecture: arch,
		Config: ocispec.ImageConfig{Env: []string{pathEnv}, Cmd: []string{"sh"}},
		Files:  files,
	}, nil
}

// readStatic reads an executable and checks that it is a statically linked ELF file, since an image
// holds no shared libraries.
func readStatic(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked; a static build is needed (busybox-static, CGO_ENABLED=0)", path)
		}
	}
	return data, nil
}

// BuildPause builds cmd/keelson-pause from the keelson source tree at src into out: static
// (CGO_ENABLED=0), stripped and with trimmed paths, so the same toolchain gives the same binary.
func BuildPause(ctx context.Context, src, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("images: building the pause program needs Go: %w", err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", out, PausePackage)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("images: go build %s: %w\n%s", PausePackage, err, output)
	}
	return nil
}

// findSource looks for the keelson module root above the working directory, then above the running
// executable (bin/keelson in a checkout).
func findSource() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, dir := range starts {
		for {
			if isKeelsonModule(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("no keelson source tree was found to build the pause program from")
}

func isKeelsonModule(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(first) == "module "+modulePath
}
