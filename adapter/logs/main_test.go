package logs

import (
	"context"
	"os"
	"testing"

	"github.com/podkit/podkit/cli"
)

// mainEnv makes the test binary run `podkit logs` itself: the end-to-end
// tests start it as a real subprocess with real signals and real files.
const mainEnv = "PODKIT_LOGS_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		stdio := cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
		os.Exit(cli.Main(context.Background(), []cli.Command{Command()}, os.Args[1:], stdio))
	}
	os.Exit(m.Run())
}
