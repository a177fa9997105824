//go:build tools

// Package tools pins the Kubernetes API server that podkit's tests run
// (internal/kubetest builds it from this module): k8s.io/kubernetes at an
// exact version, its staging modules replaced with their published
// versions. It is a separate module so that podkit's own go.mod never
// carries k8s.io/kubernetes.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
