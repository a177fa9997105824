// Package deploy_test validates every Kubernetes manifest under
// deploy/kubernetes against a real kube-apiserver (server-side dry run:
// the real schema, defaulting and admission), so an example that a user
// applies is one the API server accepts; and every Compose file under
// deploy/compose against what both docker-compose 1.29 and Compose v2
// accept (the container tier, e2e/compose_test.go, runs them).
package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/podkit/podkit/internal/kubetest"
	"github.com/podkit/podkit/internal/testdeps"
)

func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("kubernetes", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d manifests under deploy/kubernetes", len(files))
	}
	api := kubetest.Start(t)
	installCertManagerStandIn(t, api)
	for _, f := range files {
		t.Run(strings.TrimPrefix(f, "kubernetes/"), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			objs, err := api.Apply(ctx, "default", b, true)
			if err != nil {
				t.Fatalf("%s: the API server refused it: %v", f, err)
			}
			if len(objs) == 0 {
				t.Fatalf("%s: no objects", f)
			}
			t.Logf("%s: %s", f, strings.Join(objs, ", "))
		})
	}
}

// installCertManagerStandIn creates testdata/cert-manager-crds.yaml (the
// Issuer and Certificate kinds the queue example uses; the test's API
// server has no cert-manager) and waits until the API server serves them.
func installCertManagerStandIn(t *testing.T, api *kubetest.APIServer) {
	t.Helper()
	crds, err := os.ReadFile(filepath.Join("testdata", "cert-manager-crds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := api.Apply(ctx, "", crds, false); err != nil {
		t.Fatalf("the cert-manager stand-in CRDs: %v", err)
	}
	probe := []byte("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: probe}\nspec: {selfSigned: {}}\n")
	testdeps.WaitFor(t, "the API server to serve cert-manager.io/v1", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := api.Apply(ctx, "default", probe, true)
		return err == nil
	})
}

// composeHeader is the first line of every compose file: the Compose
// versions it runs with.
const composeHeader = "# Compose: docker-compose 1.29 (Debian's) and the Compose v2 plugin"

// TestComposeFiles checks every compose file for what docker-compose 1.29
// refuses or ignores (a top-level name, configs, secrets from the
// environment), for files it bind-mounts that are missing, for ports
// published beyond 127.0.0.1 or not overridable, and for images other
// than the two built here; then has docker-compose itself validate it.
func TestComposeFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("compose", "*", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d compose files under deploy/compose", len(files))
	}
	images := map[string]bool{
		"${PODKIT_IMAGE:-podkit:dev}":                 true,
		"${PODKIT_PEER_IMAGE:-podkit-peers:bookworm}": true,
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if first, _, _ := strings.Cut(string(b), "\n"); !strings.HasPrefix(first, composeHeader) {
				t.Errorf("%s: the first line is %q, want the supported versions: %q", f, first, composeHeader)
			}
			var doc struct {
				Top      map[string]yaml.Node `yaml:",inline"`
				Services map[string]struct {
					Image   string   `yaml:"image"`
					Ports   []string `yaml:"ports"`
					Volumes []string `yaml:"volumes"`
					Configs any      `yaml:"configs"`
				} `yaml:"services"`
				Secrets map[string]map[string]string `yaml:"secrets"`
			}
			if err := yaml.Unmarshal(b, &doc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			dir := filepath.Dir(f)
			for k := range doc.Top {
				switch {
				case k == "volumes", k == "networks", strings.HasPrefix(k, "x-"):
				default:
					t.Errorf("%s: top-level %q: docker-compose 1.29 refuses or ignores it", f, k)
				}
			}
			for name, sec := range doc.Secrets {
				if len(sec) != 1 || sec["file"] == "" {
					t.Errorf("%s: secret %s: %v; only file: works outside swarm with docker-compose 1.29", f, name, sec)
					continue
				}
				if _, err := os.Stat(filepath.Join(dir, sec["file"])); err != nil {
					t.Errorf("%s: secret %s: %v", f, name, err)
				}
			}
			var names []string
			for name := range doc.Services {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				svc := doc.Services[name]
				if !images[svc.Image] {
					t.Errorf("%s: service %s: image %q, want one of %v", f, name, svc.Image, images)
				}
				if svc.Configs != nil {
					t.Errorf("%s: service %s: configs are ignored outside swarm by docker-compose 1.29; bind-mount a file", f, name)
				}
				for _, p := range svc.Ports {
					if !strings.HasPrefix(p, "127.0.0.1:${") || !strings.Contains(p, "_PORT:-") {
						t.Errorf("%s: service %s: port %q, want 127.0.0.1:${NAME_PORT:-default}:port", f, name, p)
					}
				}
				for _, v := range svc.Volumes {
					src, _, _ := strings.Cut(v, ":")
					if !strings.HasPrefix(src, ".") {
						continue
					}
					if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
						t.Errorf("%s: service %s: bind mount %q: %v", f, name, v, err)
					}
				}
			}
		})
	}

	bin := testdeps.Binary(t, "docker-compose")
	if bin == "" {
		return
	}
	for _, f := range files {
		out, err := exec.Command(bin, "-f", f, "config", "-q").CombinedOutput()
		if err != nil {
			t.Errorf("docker-compose -f %s config: %v\n%s", f, err, out)
		}
	}
}
