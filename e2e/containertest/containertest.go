// Package containertest runs Docker containers for podkit's container tier.
// It drives the docker CLI, so it needs nothing but the standard library and
// a Docker engine.
//
// A pod is a group of containers that share namespaces: start the first
// container, then start the others with NetworkOf and PIDOf pointing at it,
// the way Kubernetes joins a pod's containers to its pause container.
//
//	app := containertest.Run(t, containertest.Options{
//		Name:    "app",
//		Image:   containertest.PeerImage(),
//		Cmd:     []string{"redis-server", "--bind", "0.0.0.0"},
//		Publish: []string{"6379", "9090"},
//	})
//	containertest.Run(t, containertest.Options{
//		Name:      "ambassador",
//		Image:     containertest.Image(),
//		Cmd:       []string{"shard", "--listen", ":9090"},
//		NetworkOf: app,
//		PIDOf:     app,
//	})
//	addr := app.Addr(t, "9090") // 127.0.0.1:<host port>
//
// Every container and network gets a random name suffix and the label
// podkit.test=1, and is removed when the test that made it ends (with
// `docker rm -f`); when that test failed, the container's logs are logged
// first. A missing Docker engine or image skips the test, or fails it under
// PODKIT_REQUIRE_DEPS=1 (see package testdeps).
//
// Methods take the testing.TB of the calling test, so that they may be
// called from subtests of the test that started the container.
package containertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/podkit/podkit/internal/testdeps"
)

// Label marks every container and network this package creates, so that
// leftovers of a killed test run can be found:
//
//	docker rm -f $(docker ps -aq --filter label=podkit.test=1)
const Label = "podkit.test=1"

// Environment variables naming the images under test, and their defaults.
const (
	ImageEnv         = "PODKIT_IMAGE"
	DefaultImage     = "podkit:dev"
	PeerImageEnv     = "PODKIT_PEER_IMAGE"
	DefaultPeerImage = "podkit-peers:bookworm"
)

// Image returns the podkit image to test: $PODKIT_IMAGE, or podkit:dev as
// built by make image.
func Image() string { return envOr(ImageEnv, DefaultImage) }

// PeerImage returns the image of third-party servers (nginx, redis,
// memcached, nutcracker, MariaDB, PostgreSQL, busybox): $PODKIT_PEER_IMAGE,
// or podkit-peers:bookworm as built by make peer-image.
func PeerImage() string { return envOr(PeerImageEnv, DefaultPeerImage) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// cliTimeout bounds every docker CLI call except Wait.
var cliTimeout = 2 * time.Minute

// docker runs the docker CLI and returns its trimmed stdout; the error
// carries stderr. Without a deadline on ctx, the call is bounded by
// cliTimeout.
func docker(ctx context.Context, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cliTimeout)
		defer cancel()
	}
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// must runs the docker CLI and fails t if it fails.
func must(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// uniqueName returns prefix with a random suffix, valid as a container or
// network name.
func uniqueName(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	if prefix == "" {
		prefix = "c"
	}
	return "podkit-test-" + prefix + "-" + hex.EncodeToString(b)
}

// Options describes a container to run. Image is required.
type Options struct {
	Name       string   // name prefix; a random suffix is appended
	Image      string   // must exist locally; nothing is pulled
	Cmd        []string // arguments after the image (the command)
	Entrypoint string   // replaces the image's entrypoint when set
	Env        []string // KEY=value
	User       string   // --user
	Workdir    string   // --workdir

	// Network is the --network value: a network name (see NewNetwork),
	// "none" or "host". Ignored when NetworkOf is set.
	Network string
	// Aliases are DNS names for the container on Network.
	Aliases []string
	// NetworkOf joins the network namespace of another container
	// (--network container:ID), as the containers of a pod share one.
	NetworkOf *Container
	// PIDOf joins the PID namespace of another container
	// (--pid container:ID).
	PIDOf *Container

	// Publish lists container ports ("8080" or "8080/tcp", "53/udp") to
	// publish on a random port of 127.0.0.1; Addr returns the host side.
	// Ports of a container started with NetworkOf are published by the
	// container that owns the namespace.
	Publish []string

	// Volumes are -v arguments: "name:/path", "/host/path:/path:ro".
	Volumes []string
	// Labels are added to the podkit.test=1 label.
	Labels map[string]string
	// Args are further `docker run` flags, placed before the image.
	Args []string
}

// Container is a running (or exited) container.
type Container struct {
	ID   string
	Name string
}

// Run starts a container with `docker run -d` and returns it once Docker
// reports it started. It is removed when t ends. A missing Docker engine or
// image skips t, or fails it under PODKIT_REQUIRE_DEPS=1.
func Run(t testing.TB, o Options) *Container {
	t.Helper()
	if o.Image == "" {
		t.Fatal("containertest: Options.Image is empty")
	}
	testdeps.DockerImage(t, o.Image)
	if t.Skipped() || t.Failed() {
		return nil
	}

	name := uniqueName(o.Name)
	args := []string{"run", "-d", "--name", name, "--label", Label}
	for k, v := range o.Labels {
		args = append(args, "--label", k+"="+v)
	}
	switch {
	case o.NetworkOf != nil:
		args = append(args, "--network", "container:"+o.NetworkOf.ID)
	case o.Network != "":
		args = append(args, "--network", o.Network)
		for _, a := range o.Aliases {
			args = append(args, "--network-alias", a)
		}
	}
	if o.PIDOf != nil {
		args = append(args, "--pid", "container:"+o.PIDOf.ID)
	}
	for _, p := range o.Publish {
		args = append(args, "--publish", "127.0.0.1::"+p)
	}
	for _, e := range o.Env {
		args = append(args, "--env", e)
	}
	for _, v := range o.Volumes {
		args = append(args, "--volume", v)
	}
	if o.User != "" {
		args = append(args, "--user", o.User)
	}
	if o.Workdir != "" {
		args = append(args, "--workdir", o.Workdir)
	}
	if o.Entrypoint != "" {
		args = append(args, "--entrypoint", o.Entrypoint)
	}
	args = append(args, o.Args...)
	args = append(args, o.Image)
	args = append(args, o.Cmd...)

	id, err := docker(context.Background(), args...)
	c := &Container{ID: id, Name: name}
	// Register removal even when run failed: docker run -d can create the
	// container and then fail to start it.
	t.Cleanup(func() {
		if t.Failed() {
			if logs, err := c.logs(); err == nil && logs != "" {
				t.Logf("logs of container %s (%s):\n%s", name, o.Image, tail(logs, 8192))
			}
		}
		docker(context.Background(), "rm", "-f", "-v", name)
	})
	if err != nil {
		t.Fatalf("containertest: %v", err)
	}
	return c
}

// String returns the container's name.
func (c *Container) String() string { return c.Name }

// Addr returns the 127.0.0.1 host address that the container port
// ("8080", "8080/tcp") is published on; it must be in Options.Publish.
func (c *Container) Addr(t testing.TB, port string) string {
	t.Helper()
	if !strings.Contains(port, "/") {
		port += "/tcp"
	}
	out := must(t, "port", c.ID, port)
	for _, line := range strings.Split(out, "\n") {
		host, p, err := net.SplitHostPort(strings.TrimSpace(line))
		if err == nil && host == "127.0.0.1" {
			return net.JoinHostPort(host, p)
		}
	}
	t.Fatalf("containertest: %s: port %s is not published on 127.0.0.1 (docker port: %q)", c.Name, port, out)
	return ""
}

// Logs returns the container's stdout and stderr so far, interleaved.
func (c *Container) Logs(t testing.TB) string {
	t.Helper()
	logs, err := c.logs()
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

func (c *Container) logs() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", c.ID).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker logs %s: %w: %s", c.Name, err, out)
	}
	return string(out), nil
}

// Inspect returns `docker inspect --format format` for the container, for
// example "{{.State.Status}}".
func (c *Container) Inspect(t testing.TB, format string) string {
	t.Helper()
	return must(t, "inspect", "--format", format, c.ID)
}

// Running reports whether the container is running.
func (c *Container) Running(t testing.TB) bool {
	t.Helper()
	return c.Inspect(t, "{{.State.Running}}") == "true"
}

// ExitCode returns the exit code of an exited container.
func (c *Container) ExitCode(t testing.TB) int {
	t.Helper()
	out := c.Inspect(t, "{{.State.ExitCode}}")
	code, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("containertest: %s: exit code %q: %v", c.Name, out, err)
	}
	return code
}

// Stop runs `docker stop -t timeout`: SIGTERM (or the image's stop signal),
// then SIGKILL after timeout seconds. It returns the container's exit code;
// 137 means it had to be killed.
func (c *Container) Stop(t testing.TB, timeout int) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout)*time.Second+cliTimeout)
	defer cancel()
	if _, err := docker(ctx, "stop", "-t", strconv.Itoa(timeout), c.ID); err != nil {
		t.Fatal(err)
	}
	return c.ExitCode(t)
}

// Wait blocks until the container exits, or until timeout passes, and
// returns its exit code.
func (c *Container) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "wait", c.ID).Output()
	if ctx.Err() != nil {
		t.Fatalf("containertest: %s still running after %v", c.Name, timeout)
	}
	if err != nil {
		t.Fatalf("containertest: docker wait %s: %v", c.Name, err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("containertest: docker wait %s: %q: %v", c.Name, out, err)
	}
	return code
}

// Kill sends signal (for example "SIGTERM", "HUP") to the container's main
// process.
func (c *Container) Kill(t testing.TB, signal string) {
	t.Helper()
	must(t, "kill", "--signal", signal, c.ID)
}

// Pause freezes every process of the container, as a hung node would be.
func (c *Container) Pause(t testing.TB) {
	t.Helper()
	must(t, "pause", c.ID)
}

// Unpause thaws a paused container.
func (c *Container) Unpause(t testing.TB) {
	t.Helper()
	must(t, "unpause", c.ID)
}

// Exec runs a command in the container and returns its combined output; a
// non-zero exit is an error, not a test failure, so a test can assert on it.
func (c *Container) Exec(t testing.TB, cmd ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", c.ID}, cmd...)...).CombinedOutput()
	return string(out), err
}

// IP returns the container's address on network.
func (c *Container) IP(t testing.TB, network *Network) string {
	t.Helper()
	ip := c.Inspect(t, fmt.Sprintf("{{with index .NetworkSettings.Networks %q}}{{.IPAddress}}{{end}}", network.Name))
	if ip == "" {
		t.Fatalf("containertest: %s is not on network %s", c.Name, network.Name)
	}
	return ip
}

// Network is a user-defined bridge network: containers on it reach each
// other by name and alias.
type Network struct {
	ID   string
	Name string
}

// NewNetwork creates a bridge network named prefix plus a random suffix. It
// is removed when t ends; containers still attached then are disconnected
// first.
func NewNetwork(t testing.TB, prefix string) *Network {
	t.Helper()
	testdeps.Docker(t)
	if t.Skipped() || t.Failed() {
		return nil
	}
	name := uniqueName(prefix)
	id := must(t, "network", "create", "--driver", "bridge", "--label", Label, name)
	n := &Network{ID: id, Name: name}
	t.Cleanup(func() { n.remove() })
	return n
}

// String returns the network's name.
func (n *Network) String() string { return n.Name }

// remove disconnects whatever is still attached and removes the network.
func (n *Network) remove() {
	ctx := context.Background()
	if _, err := docker(ctx, "network", "rm", n.ID); err == nil {
		return
	}
	out, _ := docker(ctx, "network", "inspect", "--format", "{{range $id, $c := .Containers}}{{$id}} {{end}}", n.ID)
	for _, id := range strings.Fields(out) {
		docker(ctx, "network", "disconnect", "-f", n.ID, id)
	}
	docker(ctx, "network", "rm", n.ID)
}

// Connect attaches a running container to the network, with optional DNS
// aliases; with Disconnect it makes and heals partitions.
func (n *Network) Connect(t testing.TB, c *Container, aliases ...string) {
	t.Helper()
	args := []string{"network", "connect"}
	for _, a := range aliases {
		args = append(args, "--alias", a)
	}
	must(t, append(args, n.ID, c.ID)...)
}

// Disconnect detaches a container from the network.
func (n *Network) Disconnect(t testing.TB, c *Container) {
	t.Helper()
	must(t, "network", "disconnect", "--force", n.ID, c.ID)
}

// NewVolume creates a named volume, removed when t ends, for containers of
// a pod to share (Options.Volumes: volume.Name+":/data").
func NewVolume(t testing.TB, prefix string) *Volume {
	t.Helper()
	testdeps.Docker(t)
	if t.Skipped() || t.Failed() {
		return nil
	}
	name := uniqueName(prefix)
	must(t, "volume", "create", "--label", Label, name)
	t.Cleanup(func() { docker(context.Background(), "volume", "rm", "-f", name) })
	return &Volume{Name: name}
}

// Volume is a named Docker volume.
type Volume struct {
	Name string
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
