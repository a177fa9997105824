package election_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/podkit/podkit/election"
	"github.com/podkit/podkit/election/backends"
)

// The fault tests run the test binary as podkit elect with every backend,
// as cmd/podkit wires them.
func init() { election.WireBackends(backends.All()...) }

// TestDepsLinkNoClients: importing package election links neither etcd's
// client nor client-go; the program wires them through election/backends.
func TestDepsLinkNoClients(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go list needs the go command on PATH:", err)
	}
	heavy := func(pkg string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		var found []string
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "k8s.io/") || strings.HasPrefix(dep, "go.etcd.io/") {
				found = append(found, dep)
			}
		}
		return found
	}
	if found := heavy("github.com/podkit/podkit/election"); len(found) > 0 {
		t.Errorf("package election links %d etcd/Kubernetes packages, e.g. %s; they belong behind election/backends", len(found), found[0])
	}
	// The check itself sees them where they are.
	if found := heavy("github.com/podkit/podkit/election/backends"); len(found) == 0 {
		t.Error("election/backends links no etcd/Kubernetes package: go list -deps gives nothing to check")
	}
}
