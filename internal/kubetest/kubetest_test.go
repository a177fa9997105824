package kubetest

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestAPIServer(t *testing.T) {
	api := Start(t)
	if api == nil {
		return
	}
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(api.Config)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != Version {
		t.Errorf("server version %s, want %s", v.GitVersion, Version)
	}

	t.Run("Apply", func(t *testing.T) {
		manifest := []byte(`apiVersion: v1
kind: ServiceAccount
metadata:
  name: reader
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader
subjects:
- {kind: ServiceAccount, name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {a: "1"}
`)
		got, err := api.Apply(ctx, "default", manifest, false)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, " ") != "ServiceAccount/reader Role/reader RoleBinding/reader ConfigMap/settings" {
			t.Errorf("applied %v", got)
		}
		// RBAC is real: the account may read ConfigMaps, not Secrets.
		sa, err := api.ServiceAccountConfig(ctx, "default", "reader")
		if err != nil {
			t.Fatal(err)
		}
		scs := kubernetes.NewForConfigOrDie(sa)
		if _, err := scs.CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{}); err != nil {
			t.Errorf("reader: get configmap: %v", err)
		}
		if _, err := scs.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{}); err == nil {
			t.Error("reader: listing secrets was allowed")
		}
	})

	t.Run("DryRunRejects", func(t *testing.T) {
		bad := []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: 99999\n")
		_, err := api.Apply(ctx, "default", bad, true)
		if err == nil || !strings.Contains(err.Error(), "document 1 (Service bad)") {
			t.Errorf("invalid Service: %v", err)
		}
		good := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dry\n")
		if _, err := api.Apply(ctx, "default", good, true); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "dry", metav1.GetOptions{}); err == nil {
			t.Error("a dry-run ConfigMap was stored")
		}
	})
	_ = corev1.NamespaceDefault
}

// TestBinary gets the kube-apiserver binary (building it the first time on
// a machine) and checks that it is the pinned version. `make test` runs it
// alone first, under a timeout of its own, so that the first build does not
// count against any package's test timeout.
func TestBinary(t *testing.T) {
	bin := Binary(t)
	if bin == "" {
		return
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", bin, err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "Kubernetes "+Version {
		t.Fatalf("%s --version = %q, want %q", bin, got, "Kubernetes "+Version)
	}
}
