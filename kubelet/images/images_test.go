package images_test

import (
	"context"
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
	wantNames := append([]string{build.PauseImage}, build.BusyboxNames...)
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
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
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
