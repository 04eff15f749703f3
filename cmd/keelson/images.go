package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keelson/keelson/kubelet/images/build"
)

// runImages runs `keelson images build`: it writes the pause and busybox image archives into
// <data-dir>/agent/images/, where the node imports them at start.
func runImages(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "build" {
		return fmt.Errorf("usage: keelson images build [--data-dir D] [--pause-binary PATH] [--busybox PATH]")
	}
	fs := flag.NewFlagSet("images build", flag.ExitOnError)
	dataDir := fs.String("data-dir", "/var/lib/keelson", "the node's data directory; archives go to <data-dir>/agent/images")
	pause := fs.String("pause-binary", "", "static pause program (bin/keelson-pause); default: build cmd/keelson-pause with go from the source tree")
	busybox := fs.String("busybox", build.DefaultBusybox, "statically linked busybox (Debian's busybox-static)")
	_ = fs.Parse(args[1:])
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	archives, err := build.Build(ctx, build.Options{
		Dir: filepath.Join(*dataDir, "agent", "images"), PauseBinary: *pause, Busybox: *busybox, Log: log,
	})
	if err != nil {
		return err
	}
	for _, a := range archives {
		fmt.Printf("%s\t%s\t%v\n", a.Path, a.Manifest, a.Names)
	}
	return nil
}
