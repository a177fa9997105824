package kubeconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u, namespace: team-a}
current-context: x
`

func TestLoad(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster, whatever runs the test
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	if err := os.WriteFile(path, []byte(sample), 0o600); err != nil {
		t.Fatal(err)
	}

	rc, ns, err := Load(path)
	if err != nil || rc.Host != "https://127.0.0.1:6443" || rc.BearerToken != "t" || ns != "team-a" {
		t.Fatalf("Load(path) = %v %q %v", rc, ns, err)
	}

	t.Setenv("KUBECONFIG", filepath.Join(dir, "absent")+string(os.PathListSeparator)+path)
	if rc, _, err := Load(""); err != nil || rc.Host != "https://127.0.0.1:6443" {
		t.Fatalf("Load via $KUBECONFIG = %v %v", rc, err)
	}

	t.Setenv("KUBECONFIG", "")
	if _, _, err := Load(""); err == nil || !strings.Contains(err.Error(), "not running in a cluster") || !strings.Contains(err.Error(), "$KUBECONFIG is not set") {
		t.Fatalf("Load outside a cluster without $KUBECONFIG: %v", err)
	}
	missing := filepath.Join(dir, "missing")
	if _, _, err := Load(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Load(missing) = %v, want an error naming the file", err)
	}
}
