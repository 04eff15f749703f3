package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
)

// Result is what one run of a command-line tool did.
type Result struct {
	Args   []string
	Stdout string
	Stderr string
	Code   int
	tool   string
}

func (r Result) String() string {
	return fmt.Sprintf("%s %s\nexit code: %d\nstdout:\n%s\nstderr:\n%s", r.tool, strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// RunCommand runs cmd, made with exec.CommandContext on ctx, to completion and reports what it
// did, whatever its exit code; args are the arguments the spec gave, for the report. It fails
// the spec if the command cannot start or outlives ctx.
func RunCommand(ctx context.Context, cmd *exec.Cmd, args []string) Result {
	ginkgo.GinkgoHelper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := Result{Args: args, Stdout: stdout.String(), Stderr: stderr.String(), tool: filepath.Base(cmd.Path)}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.Code = exit.ExitCode()
	default:
		ginkgo.Fail(fmt.Sprintf("running %s %s: %v", r.tool, strings.Join(args, " "), err))
	}
	gomega.Expect(ctx.Err()).NotTo(gomega.HaveOccurred(), "%s did not finish in time:\n%s", r.tool, r)
	return r
}

// SyncBuffer collects a process's output while a test reads it.
type SyncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
