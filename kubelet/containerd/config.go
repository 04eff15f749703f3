package containerd

import (
	"fmt"
	"strconv"
	"strings"
)

// disabledPlugins are the containerd 1.6 plugins a node never uses. Turning them off saves start time
// and keeps the daemon away from host-wide paths (the opt plugin writes to /opt/containerd). Names
// that a build lacks are ignored by containerd.
var disabledPlugins = []string{
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
	"io.containerd.internal.v1.opt",
	"io.containerd.internal.v1.tracing",
	"io.containerd.tracing.processor.v1.otlp",
}

// configTOML renders the daemon's config.toml (version 2, as containerd 1.6 reads it). Everything the
// daemon writes lives under o's directories, the debug and metrics listeners are off and the CRI
// stream server takes an ephemeral loopback port, so that several daemons can run on one host.
func configTOML(o *Options) string {
	q := strconv.Quote
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	disabled := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		disabled[i] = q(p)
	}
	w("# Written by keelson for its private containerd; rewritten at every start.")
	w("version = 2")
	w("root = %s", q(o.rootDir()))
	w("state = %s", q(o.StateDir))
	w("temp = %s", q(o.tempDir()))
	w("oom_score = 0")
	w("disabled_plugins = [%s]", strings.Join(disabled, ", "))
	w("")
	w("[grpc]")
	w("  address = %s", q(o.socket()))
	w("  max_recv_message_size = 16777216")
	w("  max_send_message_size = 16777216")
	w("")
	w("[ttrpc]")
	w("  address = %s", q(o.socket()+".ttrpc"))
	w("")
	w("[debug]")
	w("  address = \"\"")
	w("  level = %s", q(o.LogLevel))
	w("")
	w("[metrics]")
	w("  address = \"\"")
	w("")
	w("[plugins]")
	w("  [plugins.\"io.containerd.grpc.v1.cri\"]")
	w("    sandbox_image = %s", q(o.SandboxImage))
	w("    restrict_oom_score_adj = true")
	w("    stream_server_address = \"127.0.0.1\"")
	w("    stream_server_port = \"0\"")
	w("    enable_tls_streaming = false")
	w("    disable_tcp_service = true")
	w("    netns_mounts_under_state_dir = true")
	w("    disable_hugetlb_controller = true")
	w("    tolerate_missing_hugetlb_controller = true")
	w("    max_container_log_line_size = 16384")
	w("    [plugins.\"io.containerd.grpc.v1.cri\".containerd]")
	w("      snapshotter = \"overlayfs\"")
	w("      default_runtime_name = \"runc\"")
	w("      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]")
	w("        runtime_type = \"io.containerd.runc.v2\"")
	w("        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]")
	w("          SystemdCgroup = false")
	w("          Root = %s", q(o.runcRoot()))
	w("    [plugins.\"io.containerd.grpc.v1.cri\".cni]")
	w("      bin_dir = %s", q(o.CNIBinDir))
	w("      conf_dir = %s", q(o.CNIConfDir))
	w("      max_conf_num = 1")
	w("    [plugins.\"io.containerd.grpc.v1.cri\".registry]")
	w("      config_path = %s", q(o.RegistryConfigDir))
	return b.String()
}
