// Package containerd runs a private containerd daemon as a child process of the node agent, with a
// config, root, state and socket of its own, and dials the CRI on it.
//
// Debian's containerd package (1.6) is the daemon; its CRI plugin serves the kubelet. Several private
// daemons can run on one host at once as long as their directories differ: nothing in the config
// they get is host-wide (sockets, state, runc root, network namespaces and the CRI stream server's
// port are all their own).
package containerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Defaults for Options.
const (
	DefaultBinary       = "containerd"
	DefaultSandboxImage = "registry.k8s.io/pause:3.10.2"
	DefaultCNIBinDir    = "/usr/lib/cni"
	// DefaultStopGrace is how long Stop waits after SIGTERM before it kills the daemon.
	DefaultStopGrace = 10 * time.Second
)

// maxSocketPath is the longest path a unix socket address can hold on Linux (sun_path is 108 bytes
// with the trailing NUL).
const maxSocketPath = 107

// Options configure a private containerd.
type Options struct {
	// Dir holds everything the daemon owns: config.toml, root/, state/, containerd.sock and
	// containerd.log. Required; e.g. <data-dir>/agent/containerd.
	Dir string
	// StateDir is the daemon's state directory (default Dir/state).
	StateDir string
	// Binary is the containerd executable, a path or a name looked up in PATH (default "containerd").
	Binary string
	// SandboxImage is the CRI plugin's pause image (default registry.k8s.io/pause:3.10.2).
	SandboxImage string
	// CNIBinDir holds the CNI plugins (default /usr/lib/cni).
	CNIBinDir string
	// CNIConfDir holds the CNI network configs the CRI plugin loads (default
	// <Dir>/../cni/net.d, i.e. <data-dir>/agent/cni/net.d next to <data-dir>/agent/containerd).
	CNIConfDir string
	// RegistryConfigDir is the CRI plugin's registry config_path, one <host>/hosts.toml per registry
	// (default Dir/certs.d).
	RegistryConfigDir string
	// LogLevel is the daemon's log level (default "info").
	LogLevel string
	// StopGrace is how long Stop waits after SIGTERM before it kills the daemon (default 10s).
	StopGrace time.Duration
	// Log receives this package's own messages (default: discarded). The daemon's output goes to
	// Dir/containerd.log.
	Log *slog.Logger
}

func (o *Options) rootDir() string  { return filepath.Join(o.Dir, "root") }
func (o *Options) tempDir() string  { return filepath.Join(o.Dir, "tmp") }
func (o *Options) socket() string   { return filepath.Join(o.Dir, "containerd.sock") }
func (o *Options) runcRoot() string { return filepath.Join(o.StateDir, "runc") }

// ConfigPath is the daemon's config file under dir.
func ConfigPath(dir string) string { return filepath.Join(dir, "config.toml") }

// LogPath is the file the daemon's output goes to under dir.
func LogPath(dir string) string { return filepath.Join(dir, "containerd.log") }

func (o *Options) complete() error {
	if o.Dir == "" {
		return errors.New("containerd: Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return fmt.Errorf("containerd: %w", err)
	}
	o.Dir = dir
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.Dir, "state")
	}
	if o.Binary == "" {
		o.Binary = DefaultBinary
	}
	if o.SandboxImage == "" {
		o.SandboxImage = DefaultSandboxImage
	}
	if o.CNIBinDir == "" {
		o.CNIBinDir = DefaultCNIBinDir
	}
	if o.CNIConfDir == "" {
		o.CNIConfDir = filepath.Join(filepath.Dir(o.Dir), "cni", "net.d")
	}
	if o.RegistryConfigDir == "" {
		o.RegistryConfigDir = filepath.Join(o.Dir, "certs.d")
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	// The ttrpc socket is the longest address the daemon listens on.
	if n := len(o.socket() + ".ttrpc"); n > maxSocketPath {
		return fmt.Errorf("containerd: directory %s is too deep for a unix socket path (%d bytes, at most %d)", o.Dir, n, maxSocketPath)
	}
	return nil
}

// Process is a running private containerd.
type Process struct {
	socket  string
	logPath string
	cmd     *exec.Cmd
	grace   time.Duration
	log     *slog.Logger

	done chan struct{} // closed once the daemon has exited and err is set
	err  error         // why the daemon exited; read only after done is closed

	stopOnce sync.Once
}

// Start writes the daemon's config under opts.Dir, starts containerd and waits until its CRI answers
// a Version call. It fails if the daemon exits first or ctx ends first (the daemon is then stopped).
// The daemon runs until Stop; it is also sent SIGTERM if the calling process dies.
func Start(ctx context.Context, opts Options) (*Process, error) {
	if err := opts.complete(); err != nil {
		return nil, err
	}
	for _, d := range []string{opts.Dir, opts.rootDir(), opts.StateDir, opts.tempDir(), opts.CNIConfDir, opts.RegistryConfigDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("containerd: %w", err)
		}
	}
	config := ConfigPath(opts.Dir)
	if err := writeFileAtomic(config, []byte(configTOML(&opts)), 0o600); err != nil {
		return nil, fmt.Errorf("containerd: writing config: %w", err)
	}
	binary, err := exec.LookPath(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("containerd: %w (install Debian's containerd package)", err)
	}
	// A socket left by a daemon that died would make the new one fail to listen.
	for _, s := range []string{opts.socket(), opts.socket() + ".ttrpc"} {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("containerd: %w", err)
		}
	}
	if err := stopStale(&opts, config); err != nil {
		return nil, err
	}
	rotateLog(LogPath(opts.Dir))
	logFile, err := os.OpenFile(LogPath(opts.Dir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	cmd := exec.Command(binary, "--config", config)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = opts.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so that a Ctrl-C at the terminal reaches the agent only, which then
		// stops the daemon after the pods' clients.
		Setpgid: true,
		// Should the agent die, the daemon goes too rather than hold its socket and database.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("containerd: %w", err)
	}
	if err := os.WriteFile(pidPath(opts.Dir), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		opts.Log.Warn("writing containerd's pid file", "err", err)
	}
	p := &Process{socket: opts.socket(), logPath: LogPath(opts.Dir), cmd: cmd, grace: opts.StopGrace, log: opts.Log, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		_ = logFile.Close()
		if err == nil {
			err = errors.New("containerd: exited")
		} else {
			err = fmt.Errorf("containerd: %w (see %s)", err, LogPath(opts.Dir))
		}
		p.err = err
		close(p.done)
	}()
	opts.Log.Info("starting containerd", "binary", binary, "config", config, "pid", cmd.Process.Pid)
	if err := p.waitReady(ctx); err != nil {
		_ = p.Stop()
		return nil, err
	}
	opts.Log.Info("containerd is ready", "socket", p.socket)
	return p, nil
}

// waitReady polls the CRI Version until it answers, the daemon exits or ctx ends.
func (p *Process) waitReady(ctx context.Context) error {
	conn, err := newConn(p.socket)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := runtimeapi.NewRuntimeServiceClient(conn)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		if _, err := os.Stat(p.socket); err == nil {
			callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := client.Version(callCtx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				return nil
			}
			// The daemon serves only once every plugin has loaded, so a missing service means the
			// CRI plugin failed to load: waiting longer will not help.
			if status.Code(err) == codes.Unimplemented {
				return fmt.Errorf("containerd: the CRI plugin is not running (see %s): %w", p.logPath, err)
			}
			lastErr = err
		}
		select {
		case <-p.done:
			return p.err
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("containerd: not ready: %w (last error: %v)", ctx.Err(), lastErr)
			}
			return fmt.Errorf("containerd: not ready: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Socket is the path of the daemon's unix socket (containerd's API and the CRI).
func (p *Process) Socket() string { return p.socket }

// Pid is the daemon's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the daemon has exited, whether by Stop or on its own.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err says why the daemon exited; it is nil while the daemon runs.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends the daemon SIGTERM, kills it if it has not exited after the grace period, and waits
// for it. Containers keep running under their shims, as with any containerd restart. Stop may be
// called more than once; it returns nil once the daemon is gone.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.Warn("signalling containerd", "err", err)
		}
		timer := time.NewTimer(p.grace)
		defer timer.Stop()
		select {
		case <-p.done:
		case <-timer.C:
			p.log.Warn("containerd did not stop in time; killing it", "grace", p.grace)
			if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				p.log.Warn("killing containerd", "err", err)
			}
			<-p.done
		}
	})
	<-p.done
	return nil
}

// Dial connects to the CRI (runtime and image services) on a containerd socket and checks that it
// answers a Version call within ctx. The caller closes the connection.
func Dial(ctx context.Context, socket string) (*grpc.ClientConn, error) {
	conn, err := newConn(socket)
	if err != nil {
		return nil, err
	}
	if _, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("containerd: CRI on %s: %w", socket, err)
	}
	return conn, nil
}

// maxMsgSize matches the daemon's grpc limits (16 MiB); ListContainers on a busy node is large.
const maxMsgSize = 16 << 20

func newConn(socket string) (*grpc.ClientConn, error) {
	abs, err := filepath.Abs(socket)
	if err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	conn, err := grpc.NewClient("unix://"+abs,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("containerd: dialing %s: %w", socket, err)
	}
	return conn, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), perm)); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

func pidPath(dir string) string { return filepath.Join(dir, "containerd.pid") }

// stopStale stops a daemon an earlier agent left running on this directory (one that was killed
// before it could stop it), which would hold the database and make the new daemon wait forever. It
// is recognised by the pid file and by its command line naming this config file.
func stopStale(o *Options, config string) error {
	data, err := os.ReadFile(pidPath(o.Dir))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return nil
	}
	alive := func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return false
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--config" && args[i+1] == config {
				return true
			}
		}
		return false
	}
	if !alive() {
		return nil
	}
	o.Log.Warn("stopping a containerd left running on this directory", "pid", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline, killed := time.Now().Add(o.StopGrace), false
	for alive() {
		if time.Now().After(deadline) {
			if killed {
				return fmt.Errorf("containerd: pid %d, left running on %s, does not die", pid, o.Dir)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			deadline, killed = time.Now().Add(o.StopGrace), true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// maxLogSize is the size past which the daemon's log is moved aside (to containerd.log.1) at start.
const maxLogSize = 64 << 20

func rotateLog(path string) {
	if st, err := os.Stat(path); err == nil && st.Size() > maxLogSize {
		_ = os.Rename(path, path+".1")
	}
}
