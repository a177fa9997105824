package container_test

import (
	"context"
	"flag"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/podkit/podkit/cli"
	"github.com/podkit/podkit/container"
	"github.com/podkit/podkit/internal/testdeps"
)

// oneShot is a component that is done as soon as it runs.
type oneShot struct{}

func (oneShot) Name() string { return "one-shot" }

func (oneShot) Run(ctx context.Context, h *container.Host) error {
	h.Logger().Info("did the work")
	return nil
}

// oneShotCommand is built the way logs, config-sync and worker build
// theirs: a batch run needs no admin listener unless asked for one, its
// logs go to stderr, and every line names the instance.
func oneShotCommand() cli.Command {
	return container.InvocationCommand("one-shot", "does one thing", "[--level N]",
		func(fs *flag.FlagSet) func(*container.Invocation) (container.Component, error) {
			batch := fs.Bool("batch", false, "a batch run")
			return func(in *container.Invocation) (container.Component, error) {
				if err := container.NoArgs(in.Args); err != nil {
					return nil, err
				}
				if *batch {
					in.AdminOnlyIfGiven()
				}
				in.Opts.LogAttrs = []any{"instance", "i-1"}
				return oneShot{}, nil
			}
		}, container.LogToStderr())
}

func runOneShot(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb testdeps.Buffer
	code = cli.Main(context.Background(), []cli.Command{oneShotCommand()}, append([]string{"one-shot"}, args...),
		cli.IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	return code, out.String(), errb.String()
}

// TestInvocationCommand: what the build sets in the options is what the
// component runs with, and it is checked like a flag.
func TestInvocationCommand(t *testing.T) {
	// The default admin address may be taken by anything on a shared
	// machine; give every run an address of its own that is taken.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	t.Setenv("PODKIT_ADMIN_ADDR", "")
	os.Unsetenv("PODKIT_ADMIN_ADDR")
	// Hold the default admin address, unless something else already does:
	// a batch run must not need it either way.
	if ln, err := net.Listen("tcp", container.DefaultAdminAddr); err == nil {
		defer ln.Close()
	}

	t.Run("batch without --admin-addr opens no admin listener", func(t *testing.T) {
		code, stdout, stderr := runOneShot(t, "--batch", "--drain-delay", "0s", "--log-format", "text")
		if code != 0 {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
		if stdout != "" {
			t.Errorf("logs went to stdout: %q", stdout)
		}
		if !strings.Contains(stderr, "admin_addr=off") {
			t.Errorf("a batch run without --admin-addr opened the admin listener:\n%s", stderr)
		}
		for _, want := range []string{"did the work", "instance=i-1"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		// The contract's own lines carry the instance too.
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if strings.Contains(line, "level=") && !strings.Contains(line, "instance=i-1") {
				t.Errorf("a log line does not name the instance: %s", line)
			}
		}
	})
	t.Run("an explicit --admin-addr is honoured", func(t *testing.T) {
		code, _, stderr := runOneShot(t, "--batch", "--admin-addr", taken.Addr().String(), "--drain-delay", "0s")
		if code == 0 || !strings.Contains(stderr, taken.Addr().String()) {
			t.Fatalf("exit %d with a taken --admin-addr, stderr:\n%s", code, stderr)
		}
	})
	t.Run("not a batch: the admin listener is opened", func(t *testing.T) {
		code, _, stderr := runOneShot(t, "--admin-addr", "127.0.0.1:0", "--drain-delay", "0s", "--log-format", "text")
		if code != 0 || !strings.Contains(stderr, "admin_addr=127.0.0.1:") {
			t.Fatalf("exit %d; want the admin listener on a loopback port, stderr:\n%s", code, stderr)
		}
	})
	t.Run("options are checked after the build", func(t *testing.T) {
		code, _, stderr := runOneShot(t, "--log-format", "yaml")
		if code != 2 || !strings.Contains(stderr, "--log-format") {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("a build error is a usage error", func(t *testing.T) {
		code, _, stderr := runOneShot(t, "extra")
		if code != 2 || !strings.Contains(stderr, `unexpected argument "extra"`) {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
	})
}
