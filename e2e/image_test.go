//go:build container

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/e2e/containertest"
)

// TestImage checks the shipped image: it runs FROM scratch (so the binary
// is static), as the nonroot user, with CA certificates, a writable /tmp
// and the OCI labels.
func TestImage(t *testing.T) {
	image := containertest.Image()
	c := containertest.Run(t, containertest.Options{Name: "version", Image: image, Cmd: []string{"version"}})
	if code := c.Wait(t, time.Minute); code != 0 {
		t.Fatalf("podkit version exited %d:\n%s", code, c.Logs(t))
	}
	if logs := c.Logs(t); !strings.HasPrefix(logs, "podkit ") || !strings.Contains(logs, "go1.") {
		t.Errorf("podkit version printed %q, want \"podkit <version> (commit ..., go1...)\"", logs)
	}

	if got := c.Inspect(t, "{{.Config.User}}"); got != "65532:65532" {
		t.Errorf("user = %q, want 65532:65532", got)
	}
	if got := c.Inspect(t, "{{json .Config.Entrypoint}}"); got != `["/podkit"]` {
		t.Errorf("entrypoint = %s, want [\"/podkit\"]", got)
	}
	for _, key := range []string{"title", "description", "version", "revision", "source", "licenses"} {
		label := "org.opencontainers.image." + key
		got := c.Inspect(t, `{{index .Config.Labels "`+label+`"}}`)
		if got == "" {
			t.Errorf("label %s is missing", label)
		}
		if key == "licenses" && got != "Apache-2.0" {
			t.Errorf("label %s = %q, want Apache-2.0", label, got)
		}
	}

	files := exportFiles(t, c.ID)
	for name, check := range map[string]func(*tar.Header, []byte) error{
		"podkit": func(h *tar.Header, _ []byte) error {
			if h.Mode&0o111 == 0 {
				return errors.New("not executable")
			}
			return nil
		},
		"etc/ssl/certs/ca-certificates.crt": func(_ *tar.Header, b []byte) error {
			if !bytes.Contains(b, []byte("-----BEGIN CERTIFICATE-----")) {
				return errors.New("no certificates")
			}
			return nil
		},
		"tmp/": func(h *tar.Header, _ []byte) error {
			if h.Uid != 65532 {
				return errors.New("not owned by 65532")
			}
			return nil
		},
		"etc/passwd": func(_ *tar.Header, b []byte) error {
			if !bytes.Contains(b, []byte(":65532:65532:")) {
				return errors.New("no entry for 65532")
			}
			return nil
		},
	} {
		f, ok := files[name]
		if !ok {
			t.Errorf("image has no %s", name)
			continue
		}
		if err := check(f.hdr, f.data); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

type file struct {
	hdr  *tar.Header
	data []byte
}

// exportFiles reads the container's filesystem with `docker export`.
func exportFiles(t *testing.T, id string) map[string]file {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "export", id).Output()
	if err != nil {
		t.Fatalf("docker export: %v", err)
	}
	files := map[string]file{}
	r := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the export: %v", err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimPrefix(h.Name, "./")] = file{h, data}
	}
	return files
}
