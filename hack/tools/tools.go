//go:build tools

// Package tools pins the client tools the behaviour suites drive (helm), in a module of their own
// so that their dependencies never enter the product's go.mod.
package tools

import _ "helm.sh/helm/v4/cmd/helm"
