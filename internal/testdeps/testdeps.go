// Package testdeps gives podkit's tests their real peers: the Debian server
// binaries (redis-server, memcached, nginx, nutcracker, MariaDB, PostgreSQL)
// and the Docker engine.
//
// Every helper follows the test-tier rule: when a dependency is missing the
// test is skipped with a one-line reason that names the Debian package to
// install, unless the environment sets PODKIT_REQUIRE_DEPS=1, in which case
// the missing dependency fails the test. CI sets it, so a skipped test there
// is a failure, never silence.
//
// The Start* functions in servers.go run real servers as subprocesses on
// free loopback ports, wait until they answer, and stop them when the test
// ends.
package testdeps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireEnv is the environment variable that turns a missing dependency
// from a skip into a failure when set to "1".
const RequireEnv = "PODKIT_REQUIRE_DEPS"

// Require reports whether missing dependencies fail tests
// (PODKIT_REQUIRE_DEPS=1) instead of skipping them.
func Require() bool {
	return os.Getenv(RequireEnv) == "1"
}

// packages maps a binary to the Debian package that ships it, for the
// install hint. A binary not listed is assumed to ship in a package of the
// same name.
var packages = map[string]string{
	"redis-server":       "redis-server",
	"redis-cli":          "redis-tools",
	"memcached":          "memcached",
	"nginx":              "nginx",
	"nutcracker":         "nutcracker",
	"mariadbd":           "mariadb-server",
	"mysqld":             "mariadb-server",
	"mariadb-install-db": "mariadb-server",
	"mysql_install_db":   "mariadb-server",
	"mariadb":            "mariadb-client",
	"mysql":              "mariadb-client",
	"postgres":           "postgresql",
	"initdb":             "postgresql",
	"pg_ctl":             "postgresql",
	"psql":               "postgresql-client",
	"docker":             "docker.io",
}

// Package returns the Debian package that ships the binary name.
func Package(name string) string {
	if p, ok := packages[name]; ok {
		return p
	}
	return name
}

// searchDirs are looked in, in order, after PATH. Entries may be globs; when
// a glob matches several directories the highest version wins, so
// /usr/lib/postgresql/16/bin is preferred to /usr/lib/postgresql/15/bin.
var searchDirs = []string{
	"/usr/local/sbin",
	"/usr/local/bin",
	"/usr/sbin",
	"/usr/bin",
	"/sbin",
	"/bin",
	"/usr/lib/postgresql/*/bin",
}

// errNotFound is returned by find when no executable of that name exists.
var errNotFound = errors.New("not installed")

// find returns the absolute path of the executable name, looking in PATH
// first and then in searchDirs. Symbolic links are not resolved, because
// some servers (redis-server) behave according to the name they run as.
func find(name string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		return "", fmt.Errorf("binary name %q must not contain a path separator", name)
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, dir := range searchDirs {
		for _, d := range expand(dir) {
			p := filepath.Join(d, name)
			if isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", errNotFound
}

// expand returns the directories a searchDirs entry names, highest version
// first when it is a glob.
func expand(pattern string) []string {
	if !strings.ContainsAny(pattern, "*?[") {
		return []string{pattern}
	}
	dirs, _ := filepath.Glob(pattern)
	sort.SliceStable(dirs, func(i, j int) bool { return versionLess(dirs[j], dirs[i]) })
	return dirs
}

// versionLess compares two paths element by element, numerically where both
// elements are numbers, so that ".../9/bin" sorts before ".../15/bin".
func versionLess(a, b string) bool {
	as := strings.Split(a, string(filepath.Separator))
	bs := strings.Split(b, string(filepath.Separator))
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		an, aerr := strconv.ParseFloat(as[i], 64)
		bn, berr := strconv.ParseFloat(bs[i], 64)
		if aerr == nil && berr == nil {
			return an < bn
		}
		return as[i] < bs[i]
	}
	return len(as) < len(bs)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// unmet reports a missing dependency: a failure when Require is true, a skip
// otherwise. Callers must return after it, because a testing.TB that is not
// a real test may not stop the goroutine.
func unmet(t testing.TB, what, hint string) {
	t.Helper()
	if Require() {
		t.Fatalf("%s (%s); %s=1 requires it", what, hint, RequireEnv)
		return
	}
	t.Skipf("skipping: %s (%s)", what, hint)
}

// Unavailable reports that something a test needs from the machine (root,
// a mount, a namespace) is missing, by the same rule as a missing binary:
// a skip, or a failure under PODKIT_REQUIRE_DEPS=1. Like t.Skip it does not
// return in a real test.
func Unavailable(t testing.TB, what, hint string) {
	t.Helper()
	unmet(t, what, hint)
}

// Binary returns the absolute path of the server binary name (for example
// "redis-server", "nginx", "postgres"), looking in PATH, then /usr/sbin,
// /usr/bin and /usr/lib/postgresql/*/bin. When it is missing the test is
// skipped, or fails under PODKIT_REQUIRE_DEPS=1, with a reason naming the
// Debian package to install; Binary then returns "".
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := find(name)
	if errors.Is(err, errNotFound) {
		unmet(t, name+" not installed", "apt-get install "+Package(name))
		return ""
	}
	if err != nil {
		t.Fatalf("testdeps: %v", err)
		return ""
	}
	return p
}

// dockerTimeout bounds each docker CLI call made to check a dependency.
const dockerTimeout = 30 * time.Second

// docker runs the docker CLI with args and returns its combined output.
func docker(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Docker checks that the docker CLI is installed and that the engine
// answers (`docker info` succeeds). When it does not, the test is skipped,
// or fails under PODKIT_REQUIRE_DEPS=1.
func Docker(t testing.TB) {
	t.Helper()
	dockerBin(t)
}

// dockerBin is Docker returning the CLI's path, "" when unmet.
func dockerBin(t testing.TB) string {
	t.Helper()
	bin := Binary(t, "docker")
	if bin == "" {
		return ""
	}
	if out, err := docker(bin, "info", "--format", "{{.ServerVersion}}"); err != nil {
		unmet(t, "docker engine not reachable: "+firstLine(out, err), "docker info failed")
		return ""
	}
	return bin
}

// DockerImage checks that a working Docker engine has the image locally
// (no pull is attempted). When it does not, the test is skipped, or fails
// under PODKIT_REQUIRE_DEPS=1, with a hint saying how to build it.
func DockerImage(t testing.TB, image string) {
	t.Helper()
	bin := dockerBin(t)
	if bin == "" {
		return
	}
	if _, err := docker(bin, "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		unmet(t, "docker image "+image+" not found locally", imageHint(image))
	}
}

// imageHint says how to build one of podkit's local images.
func imageHint(image string) string {
	switch {
	case strings.HasPrefix(image, "podkit-peers:"):
		return "build it with make peer-image"
	case strings.HasPrefix(image, "podkit:"):
		return "build it with make image"
	default:
		return "no image is pulled by tests; build or load it first"
	}
}

// firstLine returns the first line of out, or err's text when out is empty.
func firstLine(out string, err error) string {
	if line, _, _ := strings.Cut(out, "\n"); line != "" {
		return line
	}
	return err.Error()
}
