package testdeps

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of acting
// on them, so the tier rule can be tested without ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

// writeExecutable creates a file at path with the given mode.
func writeExecutable(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode); err != nil {
		t.Fatal(err)
	}
}

// isolate points PATH and searchDirs at dirs under root for the test.
func isolate(t *testing.T, path string, dirs ...string) {
	t.Helper()
	t.Setenv("PATH", path)
	old := searchDirs
	searchDirs = dirs
	t.Cleanup(func() { searchDirs = old })
}

func TestRequire(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"1", true},
		{"", false},
		{"0", false},
		{"true", false},
		{"yes", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.value), func(t *testing.T) {
			t.Setenv(RequireEnv, tc.value)
			if got := Require(); got != tc.want {
				t.Errorf("Require() with %s=%q = %v, want %v", RequireEnv, tc.value, got, tc.want)
			}
		})
	}
}

func TestBinary(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	writeExecutable(t, filepath.Join(bin, "fake-server"), 0o755)
	writeExecutable(t, filepath.Join(bin, "fake-noexec"), 0o644)
	writeExecutable(t, filepath.Join(root, "lib", "9", "bin", "fake-pg"), 0o755)
	writeExecutable(t, filepath.Join(root, "lib", "15", "bin", "fake-pg"), 0o755)
	writeExecutable(t, filepath.Join(root, "sbin", "fake-sbin"), 0o755)
	searchPath := []string{filepath.Join(root, "sbin"), filepath.Join(root, "lib", "*", "bin")}

	for _, tc := range []struct {
		name    string
		binary  string
		require bool
		want    string // path found; "" when missing
		skipped string // substring of the skip message
		failed  string // substring of the failure message
	}{
		{name: "in PATH", binary: "fake-server", want: filepath.Join(bin, "fake-server")},
		{name: "in search dir", binary: "fake-sbin", want: filepath.Join(root, "sbin", "fake-sbin")},
		{name: "highest version wins", binary: "fake-pg", want: filepath.Join(root, "lib", "15", "bin", "fake-pg")},
		{
			name:    "not executable is missing",
			binary:  "fake-noexec",
			skipped: "skipping: fake-noexec not installed (apt-get install fake-noexec)",
		},
		{
			name:    "missing skips",
			binary:  "fake-missing",
			skipped: "skipping: fake-missing not installed (apt-get install fake-missing)",
		},
		{
			name:    "missing names the Debian package",
			binary:  "mariadbd",
			skipped: "skipping: mariadbd not installed (apt-get install mariadb-server)",
		},
		{
			name:    "missing fails when required",
			binary:  "redis-server",
			require: true,
			failed:  "redis-server not installed (apt-get install redis-server); PODKIT_REQUIRE_DEPS=1 requires it",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t, bin, searchPath...)
			req := "0"
			if tc.require {
				req = "1"
			}
			t.Setenv(RequireEnv, req)

			r := &recorder{TB: t}
			got := Binary(r, tc.binary)
			if got != tc.want {
				t.Errorf("Binary(%q) = %q, want %q", tc.binary, got, tc.want)
			}
			check(t, "skip", r.skipped, tc.skipped)
			check(t, "failure", r.failed, tc.failed)
		})
	}
}

// check asserts that got contains want, or is empty when want is.
func check(t *testing.T, what, got, want string) {
	t.Helper()
	switch {
	case want == "" && got != "":
		t.Errorf("unexpected %s: %q", what, got)
	case want != "" && !strings.Contains(got, want):
		t.Errorf("%s = %q, want it to contain %q", what, got, want)
	case strings.Contains(got, "\n"):
		t.Errorf("%s is not one line: %q", what, got)
	}
}

func TestBinaryRejectsPaths(t *testing.T) {
	r := &recorder{TB: t}
	if got := Binary(r, "/usr/bin/env"); got != "" {
		t.Errorf("Binary(path) = %q, want \"\"", got)
	}
	if !strings.Contains(r.failed, "path separator") {
		t.Errorf("failure = %q, want it to mention the path separator", r.failed)
	}
}

func TestBinaryKeepsSymlinkName(t *testing.T) {
	// redis-server is a symlink to redis-check-rdb and decides what to be
	// from its name: Binary must not resolve the link.
	root := t.TempDir()
	writeExecutable(t, filepath.Join(root, "real"), 0o755)
	if err := os.Symlink("real", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	isolate(t, root)
	if got, want := Binary(t, "alias"), filepath.Join(root, "alias"); got != want {
		t.Errorf("Binary(alias) = %q, want %q", got, want)
	}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"/usr/lib/postgresql/9/bin", "/usr/lib/postgresql/15/bin", true},
		{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/9/bin", false},
		{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", true},
		{"/a/x", "/a/y", true},
		{"/a", "/a/b", true},
		{"/a/b", "/a/b", false},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestPackage(t *testing.T) {
	for name, want := range map[string]string{
		"redis-cli":    "redis-tools",
		"mariadbd":     "mariadb-server",
		"initdb":       "postgresql",
		"memcached":    "memcached",
		"some-unknown": "some-unknown",
	} {
		if got := Package(name); got != want {
			t.Errorf("Package(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestDockerMissing(t *testing.T) {
	for _, require := range []bool{false, true} {
		t.Run(fmt.Sprintf("require=%v", require), func(t *testing.T) {
			isolate(t, t.TempDir())
			t.Setenv(RequireEnv, map[bool]string{false: "0", true: "1"}[require])
			r := &recorder{TB: t}
			Docker(r)
			want := "docker not installed (apt-get install docker.io)"
			if require {
				check(t, "failure", r.failed, want)
				check(t, "skip", r.skipped, "")
			} else {
				check(t, "skip", r.skipped, want)
				check(t, "failure", r.failed, "")
			}
		})
	}
}

func TestDockerUnreachable(t *testing.T) {
	Binary(t, "docker")
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-such.sock"))
	t.Setenv("DOCKER_CONTEXT", "")
	t.Setenv(RequireEnv, "0")
	r := &recorder{TB: t}
	Docker(r)
	check(t, "skip", r.skipped, "skipping: docker engine not reachable")
	check(t, "failure", r.failed, "")
}

func TestDockerImage(t *testing.T) {
	Docker(t)
	const image = "podkit-test-absent:never-built"
	for _, require := range []bool{false, true} {
		t.Run(fmt.Sprintf("require=%v", require), func(t *testing.T) {
			t.Setenv(RequireEnv, map[bool]string{false: "0", true: "1"}[require])
			r := &recorder{TB: t}
			DockerImage(r, image)
			want := "docker image " + image + " not found locally"
			if require {
				check(t, "failure", r.failed, want)
			} else {
				check(t, "skip", r.skipped, want)
			}
		})
	}
}

func TestImageHint(t *testing.T) {
	for image, want := range map[string]string{
		"podkit-peers:bookworm": "make peer-image",
		"podkit:dev":            "make image",
		"redis:7":               "no image is pulled",
	} {
		if got := imageHint(image); !strings.Contains(got, want) {
			t.Errorf("imageHint(%q) = %q, want it to contain %q", image, got, want)
		}
	}
}
