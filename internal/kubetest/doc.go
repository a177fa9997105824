// Package kubetest gives tests a real Kubernetes API server: it builds
// kube-apiserver from source through the Go module proxy (the separate
// module tools/kube-apiserver pins k8s.io/kubernetes), caches the binary,
// starts it against an etcd embedded in the test process, and returns a
// client config, a kubeconfig file and a bearer token. It also starts an
// embedded etcd on its own (StartEtcd) for etcd clients' tests.
//
// There is no kubelet and no controller manager: objects are stored,
// validated, admitted and watched for real, but no Pod runs.
package kubetest
