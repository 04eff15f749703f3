package images_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keelson/keelson/kubelet/containerd"
	"github.com/keelson/keelson/kubelet/containerd/containerdtest"
	"github.com/keelson/keelson/kubelet/images"
	"github.com/keelson/keelson/kubelet/images/build"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Two private containerds run at once; into each, the built pause and busybox archives are
// imported, the CRI lists them by name, and a pod sandbox on the pause image runs a busybox
// container that echoes and exits 0.
func TestImportAndRun(t *testing.T) {
	containerdtest.RequireNode(t)
	archives := t.TempDir()
	built, err := build.Build(context.Background(), build.Options{Dir: archives})
	if err != nil {
		t.Fatal(err)
	}
	// The same busybox image again, as `docker save` writes it (manifest.json, no index.json).
	dockerArchive := writeDockerArchive(t, filepath.Join(archives, "busybox.tar"), filepath.Join(archives, "docker.tar"), dockerArchiveName)
	built = append(built, dockerArchive)
	wantNames := append([]string{build.PauseImage, dockerArchiveName}, build.BusyboxNames...)
	slices.Sort(wantNames)

	var daemons []*containerd.Process
	for range 2 {
		daemons = append(daemons, containerdtest.Start(t, containerd.Options{}))
	}
	for i, d := range daemons {
		t.Logf("daemon %d on %s", i, d.Socket())
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		names, err := images.Import(ctx, d.Socket(), archives)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(names, wantNames) {
			t.Fatalf("Import = %v, want %v", names, wantNames)
		}
		// A second import finds everything in place.
		again, err := images.Import(ctx, d.Socket(), archives)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again, wantNames) {
			t.Fatalf("second Import = %v, want %v", again, wantNames)
		}

		conn, err := containerd.Dial(ctx, d.Socket())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() }) // after the sandbox's cleanup, registered later
		checkImages(ctx, t, conn, built)
		runEcho(ctx, t, conn)
	}
}

// checkImages asserts that the CRI image service lists each archive's image under its names, with
// its config digest as ID and its manifest digest as repo digest.
func checkImages(ctx context.Context, t *testing.T, conn *grpc.ClientConn, built []build.Archive) {
	t.Helper()
	is := runtimeapi.NewImageServiceClient(conn)
	list, err := is.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range built {
		if a.Manifest == "" {
			// A docker archive's manifest is made by the importer; only the config digest is known.
			st, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: a.Names[0]}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Image == nil || st.Image.Id != a.Config || !slices.Contains(st.Image.RepoTags, a.Names[0]) {
				t.Errorf("ImageStatus(%s) = %v, want id %s", a.Names[0], st.Image, a.Config)
			}
			continue
		}
		var found *runtimeapi.Image
		for _, img := range list.Images {
			if img.Id == a.Config {
				found = img
			}
		}
		if found == nil {
			t.Errorf("ListImages lacks %v (id %s): %v", a.Names, a.Config, list.Images)
			continue
		}
		for _, n := range a.Names {
			if !slices.Contains(found.RepoTags, n) {
				t.Errorf("image %s: repo tags %v lack %s", a.Config, found.RepoTags, n)
			}
			st, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: n}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Image == nil || st.Image.Id != a.Config {
				t.Errorf("ImageStatus(%s) = %v, want id %s", n, st.Image, a.Config)
				continue
			}
			repo, _, _ := strings.Cut(n, ":")
			if want := repo + "@" + a.Manifest; !slices.Contains(st.Image.RepoDigests, want) {
				t.Errorf("ImageStatus(%s).RepoDigests = %v, want %s", n, st.Image.RepoDigests, want)
			}
		}
	}
}

// runEcho runs a pod sandbox (the pause image) and a busybox container in it that prints and exits,
// then removes both. The sandbox uses the host's network, so that no CNI network is needed (the CRI
// plugin wants an interface besides loopback from a pod network).
func runEcho(ctx context.Context, t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	logDir := t.TempDir()
	sandboxConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "echo", Namespace: "default", Uid: "images-test-uid", Attempt: 0},
		LogDirectory: logDir,
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			// One PID namespace for the pod, as with shareProcessNamespace: pause is its pid 1.
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_POD},
		}},
	}
	sandbox, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandbox.PodSandboxId}); err != nil {
			t.Errorf("StopPodSandbox: %v", err)
		}
		if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandbox.PodSandboxId}); err != nil {
			t.Errorf("RemovePodSandbox: %v", err)
		}
	})
	created, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandbox.PodSandboxId,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "echo"},
			Image:    &runtimeapi.ImageSpec{Image: build.BusyboxImage},
			Command:  []string{"sh", "-c", "echo hi as $(id -un)"},
			LogPath:  "echo.log",
			Linux:    &runtimeapi.LinuxContainerConfig{},
		},
		SandboxConfig: sandboxConfig,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	status := waitExited(ctx, t, rs, created.ContainerId)
	if status.ExitCode != 0 {
		t.Errorf("container exited %d (%s: %s)", status.ExitCode, status.Reason, status.Message)
	}
	log, err := os.ReadFile(filepath.Join(logDir, "echo.log"))
	if err != nil {
		t.Fatal(err)
	}
	// CRI log lines read "<time> stdout F <line>".
	if !strings.Contains(string(log), "stdout F hi as root") {
		t.Errorf("container log = %q, want the echo", log)
	}
	if _, err := rs.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Errorf("RemoveContainer: %v", err)
	}
	checkReaping(ctx, t, rs, sandbox.PodSandboxId, sandboxConfig)
}

// checkReaping starts a long-running busybox container in the pod and, through it, leaves an
// orphan that exits: the orphan falls to the pod's pid 1, the pause program, which must reap it
// (an unreaped orphan stays a zombie, and the wait below runs into ctx's deadline).
func checkReaping(ctx context.Context, t *testing.T, rs runtimeapi.RuntimeServiceClient, sandboxID string, sandboxConfig *runtimeapi.PodSandboxConfig) {
	t.Helper()
	created, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "sleeper"},
			Image:    &runtimeapi.ImageSpec{Image: build.BusyboxImage},
			Command:  []string{"sleep", "3600"},
			Linux:    &runtimeapi.LinuxContainerConfig{},
		},
		SandboxConfig: sandboxConfig,
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	exec := func(cmd ...string) string {
		t.Helper()
		resp, err := rs.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: created.ContainerId, Cmd: cmd, Timeout: 30})
		if err != nil {
			t.Fatalf("ExecSync %v: %v", cmd, err)
		}
		if resp.ExitCode != 0 {
			t.Fatalf("ExecSync %v exited %d: %s", cmd, resp.ExitCode, resp.Stderr)
		}
		return string(resp.Stdout)
	}
	if got := strings.TrimRight(exec("cat", "/proc/1/cmdline"), "\x00"); got != "/pause" {
		t.Fatalf("pid 1 of the pod is %q, want /pause", got)
	}
	orphan := strings.TrimSpace(exec("sh", "-c", "sleep 0 & echo $!"))
	for {
		gone := true
		for _, line := range strings.Split(exec("ps", "-o", "pid,stat"), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == orphan {
				gone = false
			}
		}
		if gone {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("orphan %s was never reaped: %v", orphan, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := rs.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: created.ContainerId, Timeout: 0}); err != nil {
		t.Errorf("StopContainer: %v", err)
	}
}

// waitExited polls the container's status until it has exited or ctx ends.
func waitExited(ctx context.Context, t *testing.T, rs runtimeapi.RuntimeServiceClient, id string) *runtimeapi.ContainerStatus {
	t.Helper()
	for {
		st, err := rs.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("ContainerStatus: %v", err)
		}
		if st.Status.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st.Status
		}
		select {
		case <-ctx.Done():
			t.Fatalf("container %s did not exit: %v (state %v)", id, ctx.Err(), st.Status.State)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dockerArchiveName is the name the docker-archive copy of busybox is tagged with.
const dockerArchiveName = "docker.io/keelson/busybox-docker:v1"

// writeDockerArchive rewrites an OCI layout archive from build as a `docker save` archive
// (manifest.json naming the config and layer files, with RepoTags) tagged name, and returns what
// the importer should find: the name and the config digest.
func writeDockerArchive(t *testing.T, ociArchive, out, name string) build.Archive {
	t.Helper()
	f, err := os.Open(ociArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	var index ocispec.Index
	var manifest ocispec.Manifest
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	blobPath := func(d digest.Digest) string { return "blobs/sha256/" + d.Encoded() }
	if err := json.Unmarshal(files[blobPath(index.Manifests[0].Digest)], &manifest); err != nil {
		t.Fatal(err)
	}
	dockerManifest, err := json.Marshal([]map[string]any{{
		"Config":   manifest.Config.Digest.Encoded() + ".json",
		"RepoTags": []string{name},
		"Layers":   []string{manifest.Layers[0].Digest.Encoded() + "/layer.tar"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(o)
	for _, e := range []struct {
		name string
		data []byte
	}{
		{"manifest.json", dockerManifest},
		{manifest.Config.Digest.Encoded() + ".json", files[blobPath(manifest.Config.Digest)]},
		{manifest.Layers[0].Digest.Encoded() + "/layer.tar", files[blobPath(manifest.Layers[0].Digest)]},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(tw.Close(), o.Close()); err != nil {
		t.Fatal(err)
	}
	return build.Archive{Path: out, Names: []string{name}, Written: build.Written{Config: manifest.Config.Digest.String()}}
}
