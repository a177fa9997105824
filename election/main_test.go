package election

import (
	"context"
	"os"
	"testing"

	"github.com/podkit/podkit/cli"
)

// roleEnv switches the test binary into `podkit elect` itself (cli.Main
// with this package's command), so the fault tests run real processes
// that can be killed and stopped.
const roleEnv = "ELECT_TEST_ROLE"

// wired are the backends the command run as podkit has: set through
// WireBackends by backends_test.go, which, in package election_test, may
// import election/backends (which imports this package).
var wired []BackendFactory

// WireBackends sets the backends of the command the test binary runs as
// podkit elect.
func WireBackends(b ...BackendFactory) { wired = b }

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "podkit" {
		stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		os.Exit(cli.Main(context.Background(), []cli.Command{Command(wired...)}, os.Args[1:], stdio))
	}
	os.Exit(m.Run())
}
