// Package deploy_test validates every Kubernetes manifest under
// deploy/kubernetes against a real kube-apiserver (server-side dry run:
// the real schema, defaulting and admission), so an example that a user
// applies is one the API server accepts.
package deploy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/kubetest"
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
