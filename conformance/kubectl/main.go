// Command kubectl is the real kubectl, built from k8s.io/kubectl at our Kubernetes version, for the
// tests that drive a cluster the way a user does.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	os.Exit(cli.Run(command))
}
