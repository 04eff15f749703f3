//go:build tools

// Package tools pins k9s for the k9s suite. It has a module of its own because the last k9s
// release the module proxy serves here (v0.50.9) is built on k8s.io v0.33, which must not meet
// the product's or helm's k8s.io versions.
package tools

import _ "github.com/derailed/k9s"
